//! A fast hash for the engine's lookup tables (FxHash's multiply-rotate, eight bytes at a time):
//! std's SipHash guards a table against keys an attacker inserts, but these tables are filled
//! from the configuration only and a request only looks keys up, so an attacker's key can at
//! worst collide with the few keys the configuration put in one bucket. Per request the filter
//! hashes a handful of short keys (identity, path literals, policy and rule names).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            if let Some(w) = word.get_mut(..rest.len()) {
                w.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn keys_of_every_shape_are_found_and_told_apart() {
        let mut map: FastMap<Vec<u8>, usize> = FastMap::default();
        let keys: Vec<Vec<u8>> = (0..2000)
            .map(|i| format!("/api/svc-{i}/").into_bytes())
            .chain([vec![], vec![0], vec![0, 0]])
            .collect();
        for (i, k) in keys.iter().enumerate() {
            map.insert(k.clone(), i);
        }
        assert_eq!(map.len(), keys.len(), "no key was lost to another");
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(k), Some(&i));
        }
        assert_eq!(map.get(b"/api/svc-2000/".as_slice()), None);
        let ips: FastMap<std::net::IpAddr, u32> = [("10.0.0.1", 1), ("10.0.0.2", 2), ("::1", 3)]
            .into_iter()
            .map(|(a, i)| (a.parse().unwrap(), i))
            .collect();
        assert_eq!(ips.get(&"10.0.0.2".parse().unwrap()), Some(&2));
        assert_eq!(ips.get(&"10.0.0.3".parse().unwrap()), None);
    }
}
