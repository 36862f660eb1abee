//! The I/O rate limiter and completion-interrupt moderation, driven with
//! any sequence of operations and amounts, including limits parsed from
//! any text. Nothing may panic or overflow, and both keep their promises:
//! - a limiter never lets through more than its buckets hold plus what
//!   they refilled over the run (an oversized request counts as a full
//!   bucket), is blocked after it refuses and until its timer, and
//!   refuses while blocked;
//! - moderation never holds `max_held` completions or more without
//!   signalling, and anything held is released by its timer or a flush.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use virtio::moderation::{Hold, Moderation, ModerationConfig, MAX_BACKOFF};
use virtio::rate_limiter::{RateLimiter, TokenBucketConfig};

/// A bucket: often small and slow to refill (so the budget check below
/// is tight), sometimes anything, sometimes parsed from the fuzzer's text.
fn bucket(u: &mut Unstructured) -> Result<Option<TokenBucketConfig>> {
    Ok(match u.int_in_range(0..=5)? {
        0 => None,
        1 => {
            let len = u.int_in_range(0..=24)?;
            let text = String::from_utf8_lossy(u.bytes(len)?).into_owned();
            TokenBucketConfig::parse(&text).ok()
        }
        2 => Some(TokenBucketConfig {
            size: u.arbitrary::<u64>()?.max(1),
            refill: Duration::from_nanos(u.arbitrary::<u64>()?.max(1)),
            one_time_burst: 0,
        }),
        3 => Some(TokenBucketConfig {
            size: u.arbitrary::<u64>()?.max(1),
            refill: Duration::from_secs(u.arbitrary::<u64>()?.max(1)),
            one_time_burst: 0,
        }),
        _ => Some(TokenBucketConfig {
            size: u.int_in_range(1..=1 << 20)?,
            refill: Duration::from_secs(u.int_in_range(1..=3600)?),
            one_time_burst: 0,
        }),
    })
}

/// The most a bucket may have let through over `elapsed`: full at the
/// start, plus its refill rate times the time.
fn budget(config: &TokenBucketConfig, elapsed: Duration) -> u128 {
    let refilled = u128::from(config.size) * elapsed.as_nanos() / config.refill.as_nanos().max(1);
    u128::from(config.size) + refilled
}

fn limiter(u: &mut Unstructured) -> Result<()> {
    let bandwidth = bucket(u)?;
    let ops = bucket(u)?;
    let start = Instant::now();
    let Ok(mut limiter) = RateLimiter::new(bandwidth.clone(), ops.clone()) else {
        return Ok(());
    };
    assert_eq!(limiter.is_unlimited(), bandwidth.is_none() && ops.is_none());
    let (mut bytes_through, mut ops_through) = (0u128, 0u128);
    for _ in 0..256 {
        if u.is_empty() {
            break;
        }
        if u.ratio(1, 4)? {
            limiter.on_timer();
            assert!(!limiter.is_blocked());
            continue;
        }
        let bytes = match u.int_in_range(0..=3)? {
            0 => u.arbitrary::<u64>()?,
            1 => 512 * u64::from(u.arbitrary::<u16>()?),
            _ => u64::from(u.arbitrary::<u16>()?),
        };
        let was_blocked = limiter.is_blocked();
        if limiter.consume(bytes) {
            assert!(!was_blocked, "a blocked limiter let a request through");
            let size = bandwidth.as_ref().map_or(u64::MAX, |b| b.size);
            bytes_through += u128::from(bytes.min(size));
            ops_through += 1;
        } else {
            assert!(limiter.is_blocked(), "refused without blocking");
        }
    }
    let elapsed = start.elapsed();
    if let Some(b) = &bandwidth {
        assert!(
            bytes_through <= budget(b, elapsed),
            "{bytes_through} bytes through {b:?}"
        );
    }
    if let Some(b) = &ops {
        assert!(
            ops_through <= budget(b, elapsed),
            "{ops_through} requests through {b:?}"
        );
    }
    Ok(())
}

/// The devices' settings, or others in the same ranges.
fn moderation_config(u: &mut Unstructured) -> Result<ModerationConfig> {
    Ok(match u.int_in_range(0..=3)? {
        0 => virtio::block::MODERATION,
        1 => virtio::net::queues::MODERATION,
        _ => {
            let hold = Duration::from_micros(u.int_in_range(0..=100_000)?);
            ModerationConfig {
                hold: if u.arbitrary()? {
                    Hold::Fixed(hold)
                } else {
                    Hold::WhileBusy { max: hold }
                },
                window: Duration::from_micros(u.int_in_range(0..=1_000_000)?),
                max_held: u.int_in_range(0..=1024)?,
                backoff: u.int_in_range(0..=2 * MAX_BACKOFF)?,
            }
        }
    })
}

fn moderation(u: &mut Unstructured) -> Result<()> {
    let config = moderation_config(u)?;
    let Ok(mut m) = Moderation::new(config) else {
        return Ok(());
    };
    let mut now = Instant::now();
    // Completions held back, by this target's count.
    let mut held: usize = 0;
    for _ in 0..512 {
        if u.is_empty() {
            break;
        }
        let step = match u.int_in_range(0..=3)? {
            0 => Duration::ZERO,
            1 => Duration::from_nanos(u.int_in_range(0..=10_000)?),
            2 => Duration::from_micros(u.int_in_range(0..=10_000)?),
            _ => Duration::from_millis(u.int_in_range(0..=100_000)?),
        };
        now = now.checked_add(step).unwrap_or(now);
        let count = match u.int_in_range(0..=7)? {
            0 => u.arbitrary::<usize>()?,
            1 => 0,
            _ => u.int_in_range(1..=64)?,
        };
        let (signal, counted) = match u.int_in_range(0..=6)? {
            0..=2 => (m.on_used(count, now), count),
            3 => {
                let max = Duration::from_micros(u.int_in_range(0..=10_000)?);
                (m.ride(count, max, now), count)
            }
            4 => {
                let released = m.on_timer();
                assert_eq!(released, held > 0, "timer with {held} held");
                (released, 0)
            }
            5 => {
                let released = m.flush();
                assert_eq!(released, held > 0, "flush with {held} held");
                (released, 0)
            }
            _ => {
                let _ = m.in_stream(now);
                (false, 0)
            }
        };
        if signal {
            held = 0;
            m.signalled(now);
        } else {
            held = held.saturating_add(counted);
            if held > 0 {
                assert!(
                    held < config.max_held,
                    "{held} completions held, max {config:?}"
                );
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = if u.arbitrary().unwrap_or(false) {
        limiter(&mut u)
    } else {
        moderation(&mut u)
    };
});
