//! Randomness: one root seed per run, one independent stream per name.
//!
//! Every component, link and generator asks for its own stream by name, so adding a component or
//! drawing one more number in one place never shifts the numbers anyone else sees. Streams are
//! `Xoshiro256PlusPlus` seeded from SHA-256(root seed, name): stable across platforms and releases.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The generator behind every stream.
pub type Rng = Xoshiro256PlusPlus;

/// A run's root seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(pub u64);

impl Seed {
    /// A seed from OS randomness, for live runs started without `--seed`.
    pub fn from_entropy() -> Seed {
        Seed(rand::random())
    }

    /// The independent stream for `name` (a component, a link, a generator).
    pub fn stream(&self, name: &str) -> Rng {
        let mut hasher = Sha256::new();
        hasher.update(self.0.to_le_bytes());
        hasher.update(name.as_bytes());
        let digest = hasher.finalize();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&digest);
        Rng::from_seed(seed)
    }

    /// The stream for `name`, shareable between the restarts of a component.
    pub fn shared_stream(&self, name: &str) -> SharedRng {
        SharedRng(Arc::new(Mutex::new(self.stream(name))))
    }
}

/// A stream that several tasks (or successive incarnations of one component) draw from in turn.
#[derive(Clone, Debug)]
pub struct SharedRng(Arc<Mutex<Rng>>);

impl SharedRng {
    /// Exclusive access to the generator.
    pub fn lock(&self) -> MutexGuard<'_, Rng> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A random (version 4 layout) UUID drawn from this stream.
    pub fn uuid(&self) -> Uuid {
        uuid_from(&mut self.lock())
    }

    /// A time-ordered (version 7 layout) UUID for `unix_ms`, its random bits drawn from this stream.
    pub fn uuid_v7(&self, unix_ms: u64) -> Uuid {
        uuid_v7_from(&mut self.lock(), unix_ms)
    }
}

/// A random (version 4 layout) UUID drawn from `rng`.
pub fn uuid_from(rng: &mut Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid()
}

/// A time-ordered (version 7 layout) UUID for `unix_ms` (the caller's clock) with random bits from `rng`:
/// ids made later sort later, so an index keyed by them grows at its end.
pub fn uuid_v7_from(rng: &mut Rng, unix_ms: u64) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(unix_ms, &rng.r#gen()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_stable_and_independent() {
        let seed = Seed(7);
        let a1: u64 = seed.stream("FLINK").r#gen();
        let a2: u64 = seed.stream("FLINK").r#gen();
        let b: u64 = seed.stream("NIFI").r#gen();
        let other: u64 = Seed(8).stream("FLINK").r#gen();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, other);
    }

    #[test]
    fn v7_uuids_sort_by_their_time_and_follow_the_seed() {
        let x = Seed(1).shared_stream("ids");
        let ids: Vec<Uuid> = [1_000, 1_001, 5_000, 5_000_000].iter().map(|&ms| x.uuid_v7(ms)).collect();
        assert!(ids.windows(2).all(|w| w[0].to_string() < w[1].to_string()), "{ids:?}");
        assert_eq!(ids[0].get_version_num(), 7);
        assert_eq!(ids[0], Seed(1).shared_stream("ids").uuid_v7(1_000));
    }

    #[test]
    fn uuids_follow_the_seed() {
        let x = Seed(1).shared_stream("ids");
        let y = Seed(1).shared_stream("ids");
        let (u1, u2) = (x.uuid(), x.uuid());
        assert_ne!(u1, u2);
        assert_eq!(u1, y.uuid());
        assert_eq!(u1.get_version_num(), 4);
    }
}
