//! A fault-injecting TCP proxy on loopback, between Kafka clients and a
//! broker: added latency per forwarded chunk, connection resets, and a
//! black hole (for a while nothing is forwarded in either direction and
//! new connections wait: a network partition that heals). Tansu is started
//! advertising the proxy's port, so every client connection, metadata
//! included, goes through it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::free_port;
use super::tansu::Tansu;

/// The faults in force, shared by every pump thread.
#[derive(Default)]
struct Faults {
    latency_ms: AtomicU64,
    /// Nothing moves before this instant.
    black_hole_until: Mutex<Option<Instant>>,
    /// Open connections (both sides), for resets.
    open: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    /// Bytes forwarded, both directions.
    forwarded: AtomicU64,
}

impl Faults {
    /// Waits while the black hole lasts; false once the proxy stops.
    fn pass(&self) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let until = *self.black_hole_until.lock().unwrap();
            match until {
                Some(t) if Instant::now() < t => std::thread::sleep(Duration::from_millis(5)),
                _ => break,
            }
        }
        let latency = self.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            std::thread::sleep(Duration::from_millis(latency));
        }
        true
    }
}

pub struct Proxy {
    port: u16,
    faults: Arc<Faults>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Binds a free loopback port; forwards to `target` once started.
    pub fn bind() -> (Proxy, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (
            Proxy {
                port,
                faults: Arc::new(Faults::default()),
                accept: None,
            },
            listener,
        )
    }

    /// Starts forwarding connections on `listener` to `target`.
    pub fn start(&mut self, listener: TcpListener, target: SocketAddr) {
        listener.set_nonblocking(true).unwrap();
        let faults = Arc::clone(&self.faults);
        self.accept = Some(std::thread::spawn(move || {
            while !faults.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let faults = Arc::clone(&faults);
                        std::thread::spawn(move || connect(client, target, &faults));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set_latency(&self, latency: Duration) {
        self.faults
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Nothing is forwarded for `duration`; connections stay open.
    pub fn black_hole(&self, duration: Duration) {
        *self.faults.black_hole_until.lock().unwrap() = Some(Instant::now() + duration);
    }

    /// Whether a black hole is in force.
    pub fn black_holed(&self) -> bool {
        self.faults
            .black_hole_until
            .lock()
            .unwrap()
            .is_some_and(|t| Instant::now() < t)
    }

    /// Ends a black hole early.
    pub fn heal(&self) {
        *self.faults.black_hole_until.lock().unwrap() = None;
    }

    /// Resets every open connection (clients see them drop and reconnect).
    pub fn reset_connections(&self) -> usize {
        let open: Vec<TcpStream> = std::mem::take(&mut *self.faults.open.lock().unwrap());
        for stream in &open {
            let _ = stream.shutdown(Shutdown::Both);
        }
        open.len() / 2
    }

    pub fn forwarded_bytes(&self) -> u64 {
        self.faults.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.faults.stop.store(true, Ordering::Relaxed);
        self.reset_connections();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn connect(client: TcpStream, target: SocketAddr, faults: &Arc<Faults>) {
    if !faults.pass() {
        return;
    }
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    {
        let mut open = faults.open.lock().unwrap();
        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
            open.push(a);
            open.push(b);
        }
    }
    let up = Arc::clone(faults);
    std::thread::spawn(move || pump(client, server, &up));
    pump(s2, c2, faults);
}

/// Copies `from` to `to` chunk by chunk, through the faults, until either
/// side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, faults: &Faults) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !faults.pass() || to.write_all(&buf[..n]).is_err() {
            break;
        }
        faults.forwarded.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// A Tansu broker that advertises the proxy's port: every client
/// connection goes through the proxy. `brokers()` is the proxy's address.
pub struct ProxiedTansu {
    // Dropped first: connections close before the broker stops.
    pub proxy: Proxy,
    pub tansu: Tansu,
}

impl ProxiedTansu {
    pub fn start() -> ProxiedTansu {
        let (mut proxy, listener) = Proxy::bind();
        let broker_port = free_port();
        let tansu = Tansu::start_advertising(broker_port, proxy.port());
        proxy.start(listener, SocketAddr::from(([127, 0, 0, 1], broker_port)));
        ProxiedTansu { proxy, tansu }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port())
    }
}
