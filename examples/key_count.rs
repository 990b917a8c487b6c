use coupon_stream::replay::key::seller_key;
use std::hint::black_box;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let data = std::fs::read(&path).unwrap();
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut s = 0u64;
    for l in &lines {
        s += seller_key(black_box(l)).map_or(0, |k| k.len() as u64);
    }
    println!("{} {}", lines.len(), s);
}
