//! The login ceiling: how many Argon2id verifications per second this machine does with the
//! API's parameters (m=64 MiB, t=3, p=4 by default), using every core, for a fixed duration.
//!
//! Usage: `argon2-ceiling --seconds 10 [--memory-kib 65536 --iterations 3 --parallelism 4]`

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use argon2::{Algorithm, Argon2, Params, Version};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 65536)]
    memory_kib: u32,
    #[arg(long, default_value_t = 3)]
    iterations: u32,
    #[arg(long, default_value_t = 4)]
    parallelism: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let params = Params::new(args.memory_kib, args.iterations, args.parallelism, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let done = done.clone();
            let hasher = hasher.clone();
            scope.spawn(move || {
                // A verification is one raw hash with the stored salt and parameters.
                let mut out = [0u8; 32];
                while Instant::now() < deadline {
                    if hasher
                        .hash_password_into(b"benchmark-password", b"0123456789abcdef", &mut out)
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"verifications\":{n},\"seconds\":{elapsed:.3},\"per_second\":{:.2},\"threads\":{threads}}}",
        n as f64 / elapsed
    );
    Ok(())
}
