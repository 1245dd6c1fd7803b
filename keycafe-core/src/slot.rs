//! Key → hash slot mapping, compatible with Redis Cluster.
//!
//! Every key belongs to one of [`SLOT_COUNT`] slots, and a slot (never a
//! single key) is the unit that is owned by a node and moved between nodes.
//! The slot is `CRC16/XMODEM(key) mod 16384`, where only the *hash tag* is
//! hashed when the key has one: the bytes between the first `{` and the first
//! `}` after it, if that span is non-empty. Hash tags let an application put
//! related keys (`{user1000}.profile`, `{user1000}.session`) in one slot, so
//! multi-key commands on them work in a cluster.
//!
//! Because the function is exactly Redis's, a key lands in the same slot in
//! Keycafe and in Redis Cluster, and Redis cluster clients route correctly.

/// The number of hash slots in a cluster.
pub const SLOT_COUNT: u16 = 16384;

/// A hash slot number, always `< SLOT_COUNT`.
pub type Slot = u16;

/// Returns the slot a key belongs to.
pub fn key_slot(key: &[u8]) -> Slot {
    crc16(hash_tag(key)) % SLOT_COUNT
}

/// Returns the part of `key` that is hashed: the hash tag if there is a
/// non-empty one, otherwise the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = memchr::memchr(b'{', key) else {
        return key;
    };
    let after = &key[open + 1..];
    match memchr::memchr(b'}', after) {
        Some(close) if close > 0 => &after[..close],
        _ => key,
    }
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis
/// Cluster uses for key distribution.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

/// Lookup table for [`crc16`], computed at compile time.
static CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_known_vector() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_match_redis_cluster() {
        // Values from `redis-cli CLUSTER KEYSLOT` against Redis Cluster.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn more_slots_match_redis_cluster() {
        // Checked against redis-server 7.0.15 started with
        // `--cluster-enabled yes`, using `redis-cli CLUSTER KEYSLOT`
        // (`-x` for the binary keys).
        let vectors: &[(&[u8], Slot)] = &[
            (b"123456789", 12739),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
            (b"{a}", 15495),
            (b"a{b", 13340),
            (b"}{x}", 16287),
            (b"{}", 15257),
            (b"{", 4092),
            (b"}", 12090),
            (b"user:1000", 1649),
            (b"session:abc", 14788),
            (b"key:42", 2583),
            (b"Keycafe", 3322),
            (b"a\0b", 8383),
            (b"x\ny", 12764),
        ];
        for &(key, slot) in vectors {
            assert_eq!(key_slot(key), slot, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn hash_tags() {
        assert_eq!(key_slot(b"{user1000}.a"), key_slot(b"{user1000}.b"));
        assert_eq!(key_slot(b"{user1000}.a"), key_slot(b"user1000"));
        // An empty tag means the whole key is hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        // The tag runs from the first `{` to the first `}` after it.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        // No closing brace: the whole key.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
    }

    #[test]
    fn every_slot_is_in_range() {
        for i in 0..10_000u32 {
            assert!(key_slot(format!("key:{i}").as_bytes()) < SLOT_COUNT);
        }
    }
}
