//! [`Tansu`]: a real Kafka-protocol broker on a free loopback port, killed
//! when dropped. Tansu is installed by `.ci/run` (`cargo install tansu
//! --locked --features dynostore`); `TANSU_BIN` overrides where it is found.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::http::free_port;
use super::kafka::{self, Messages, Record};
use super::wait::wait_for;

pub struct Tansu {
    child: Child,
    pub port: u16,
    /// The group coordinator's log: kept when the test fails, for the
    /// group protocol's side of a stuck rebalance; removed otherwise.
    log: PathBuf,
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let home_bin =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if home_bin.exists() {
        return home_bin;
    }
    PathBuf::from("tansu")
}

impl Tansu {
    pub fn start() -> Tansu {
        let port = free_port();
        Tansu::start_advertising(port, port)
    }

    /// Tansu listening on `port` and telling clients to connect to
    /// `advertised` (a proxy in front of it, for instance).
    pub fn start_advertising(port: u16, advertised: u16) -> Tansu {
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised_url = format!("tcp://127.0.0.1:{advertised}");
        let log = std::env::temp_dir().join(format!(
            "coupon-stream-tansu-{}-{port}.log",
            std::process::id()
        ));
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised_url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "tansu_broker::coordinator=debug")
            // Tansu logs to standard output.
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start tansu ({e}); install it with `cargo install tansu --locked --features dynostore` or run `bash .ci/run`")
            });
        let tansu = Tansu { child, port, log };
        wait_for("tansu to listen", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        tansu
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Tansu with the processor's topics, `partitions` each.
    pub fn with_topics(partitions: i32) -> Tansu {
        let tansu = Tansu::start();
        for topic in kafka::TOPICS {
            tansu.create_topic(topic, partitions);
        }
        tansu
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        kafka::create_topic(&self.brokers(), name, partitions)
    }

    pub fn produce(&self, topic: &str, messages: &Messages) {
        kafka::produce(&self.brokers(), topic, messages)
    }

    /// Produces `messages` to `topic` and reads them back as stored (with
    /// their partitions and offsets).
    pub fn produce_and_read_back(
        &self,
        topic: &str,
        partitions: i32,
        messages: &Messages,
    ) -> Vec<Record> {
        self.produce(topic, messages);
        let stored = self.read_all(topic, partitions, messages.len(), Duration::from_secs(60));
        assert_eq!(stored.len(), messages.len(), "every message read back");
        stored
    }

    pub fn read_all(
        &self,
        topic: &str,
        partitions: i32,
        count: usize,
        timeout: Duration,
    ) -> Vec<Record> {
        kafka::read_all(&self.brokers(), topic, partitions, count, timeout)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("Tansu's group coordinator log: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
