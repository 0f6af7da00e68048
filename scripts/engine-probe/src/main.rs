//! Writes records the way hookd's ack path does, into sled, fjall or redb, and prints the
//! rate, the process's CPU per record (background threads included) and the bytes on disk:
//! one thread, batches of `BATCH` records, each a ~760-byte record under a time-ordered key
//! and an 8-byte value under a sender's event id (read first, as the dedup check is), one
//! sync per batch. `N` records (default 120 000); `RANDOM_VALUES=1` for incompressible ones.

use std::time::Instant;

/// CPU time of the whole process (every thread), in seconds.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

static N_: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
fn n() -> u64 {
    *N_.get_or_init(|| {
        std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120_000)
    })
}
const BATCH: u64 = 12;

fn keys(i: u64) -> (Vec<u8>, Vec<u8>) {
    let mut k1 = vec![b'D'];
    k1.extend_from_slice(&(1_700_000_000_000_000u64 + i).to_be_bytes());
    // a pseudo-random event id, as senders' ids are
    let h = i.wrapping_mul(0x9E3779B97F4A7C15).rotate_left(17) ^ 0x1234_5678;
    let k2 = format!("d\x00\x05benchmsg_{h:016x}{:08x}", i).into_bytes();
    (k1, k2)
}

fn main() {
    let which = std::env::args()
        .nth(1)
        .expect("usage: engine-probe sled|fjall|redb");
    let dir = fresh_dir(&which);
    // A record like hookd's: a JSON body with a fresh id and a signature-like random part.
    let random = std::env::var("RANDOM_VALUES").is_ok();
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let template = br#"{"type":"patient.ehi_export_success","id":"evt_XXXXXXXXXXXXXXXX","timestamp":"2026-11-29T12:00:00Z","data":{"org_connection_id":"00000000-0000-0000-0000-000000000000","task_id":"11111111-1111-1111-1111-111111111111","download_link":"https://api.connect.fastenhealth.com/v1/bridge/fhir/ehi-export/11111111/download","stats":{"resources":1234,"files":3}}}"#;
    let mut values = Vec::new();
    for _ in 0..1024 {
        let mut v = Vec::with_capacity(760);
        if random {
            while v.len() < 760 {
                v.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            v.extend_from_slice(b"webhook-id:msg_");
            v.extend_from_slice(format!("{:016x}", next()).as_bytes());
            v.extend_from_slice(b" webhook-signature:v1,");
            v.extend_from_slice(
                format!("{:016x}{:016x}{:016x}", next(), next(), next()).as_bytes(),
            );
            v.extend_from_slice(template);
            v.extend_from_slice(format!("{:016x}", next()).as_bytes());
            v.resize(760, b' ');
        }
        values.push(v);
    }
    let value_of = |j: u64| values[(j % 1024) as usize].clone();
    let c0 = cpu_secs();
    let t0 = Instant::now();
    match which.as_str() {
        "sled" => {
            let db = sled::Config::new()
                .path(&dir)
                .mode(sled::Mode::HighThroughput)
                .open()
                .unwrap();
            let t = db.open_tree("log").unwrap();
            let mut i = 0;
            while i < n() {
                let mut b = sled::Batch::default();
                for j in i..i + BATCH {
                    let (k1, k2) = keys(j);
                    if t.get(&k2).unwrap().is_some() {
                        panic!()
                    }
                    b.insert(k1, value_of(j));
                    b.insert(k2, &j.to_be_bytes());
                }
                t.apply_batch(b).unwrap();
                db.flush().unwrap();
                i += BATCH;
            }
        }
        "fjall" => {
            let ks = fjall::Config::new(&dir).open().unwrap();
            let p = ks.open_partition("log", Default::default()).unwrap();
            let mut i = 0;
            while i < n() {
                let mut b = ks.batch();
                for j in i..i + BATCH {
                    let (k1, k2) = keys(j);
                    if p.get(&k2).unwrap().is_some() {
                        panic!()
                    }
                    b.insert(&p, k1, value_of(j));
                    b.insert(&p, k2, j.to_be_bytes());
                }
                b.commit().unwrap();
                ks.persist(fjall::PersistMode::SyncData).unwrap();
                i += BATCH;
            }
        }
        "redb" => {
            use redb::ReadableTable;
            const T: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("log");
            let db = redb::Database::create(dir.join("db")).unwrap();
            let mut i = 0;
            while i < n() {
                let w = db.begin_write().unwrap();
                {
                    let mut t = w.open_table(T).unwrap();
                    for j in i..i + BATCH {
                        let (k1, k2) = keys(j);
                        if t.get(k2.as_slice()).unwrap().is_some() {
                            panic!()
                        }
                        t.insert(k1.as_slice(), value_of(j).as_slice()).unwrap();
                        t.insert(k2.as_slice(), j.to_be_bytes().as_slice()).unwrap();
                    }
                }
                w.commit().unwrap();
                i += BATCH;
            }
        }
        other => panic!("unknown engine {other:?}: sled, fjall or redb"),
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - c0;
    let size: u64 = walk(&dir);
    println!("{which}: {:.0} records/s, {:.1} us CPU per record, {:.1} us wall per record, {} bytes on disk per record", n() as f64 / wall, cpu * 1e6 / n() as f64, wall * 1e6 / n() as f64, size / n());
}

/// A fresh directory for one engine's files.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(format!("/tmp/kvprobe-data-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
/// Bytes of the files under `p`.
fn walk(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() { walk(&e.path()) } else { m.len() };
    }
    n
}
