use coupon_stream::replay::key::{partition_of, seller_key};
use coupon_stream_core::json::scan_object;
use coupon_stream_core::partitioner::murmur2;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let data = std::fs::read(&path).unwrap();
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .skip(50_000)
        .take(1500)
        .collect();
    let reps = 200;
    let n = (lines.len() * reps) as f64;
    let time = |f: &dyn Fn(&[u8]) -> u64| {
        let t = Instant::now();
        let mut s = 0;
        for _ in 0..reps {
            for l in &lines {
                s += f(black_box(l));
            }
        }
        black_box(s);
        t.elapsed().as_secs_f64() * 1e9 / n
    };
    for round in 0..3 {
        let nl = time(&|l| memchr::memchr(b'\n', l).map_or(0, |i| i as u64));
        let bs = time(&|l| memchr::memchr(b'\\', l).map_or(0, |i| i as u64));
        let finder = memchr::memmem::Finder::new(b"\"seller_id\"");
        let fi = time(&|l| finder.find(l).map_or(0, |i| i as u64));
        let light = time(&|l| seller_key(l).map_or(0, |k| k.len() as u64));
        let part = time(&|l| partition_of(l, 2) as u64);
        let mm = time(&|l| murmur2(&l[..6]) as u64);
        let strict = time(&|l| {
            scan_object::<1>(l, |k| (k == "seller_id").then_some(0))
                .map_or(0, |o| o.is_absent(0) as u64)
        });
        println!(
            "round {round}: memchr nl {nl:.1} ns/line, memchr backslash {bs:.1}, memmem {fi:.1}, seller_key {light:.1}, partition_of {part:.1}, murmur2(6B) {mm:.1}, strict scan {strict:.1}"
        );
    }
}
