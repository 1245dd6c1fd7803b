//! How Redis shows a binary-safe string to people: in double quotes, with
//! printable ASCII as is, `\n \r \t \a \b \\ \"`, and any other byte as
//! `\xhh` (Redis's `sdscatrepr`). redis-cli prints replies this way, and
//! `MONITOR` and the slow log quote arguments this way; Keycafe's node and
//! `keycafe-cli` share this one function so the two never drift apart.

/// Appends `data`, quoted as Redis quotes it, to `out`.
pub fn quote(out: &mut String, data: &[u8]) {
    out.push('"');
    for &byte in data {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b' '..=b'~' => out.push(char::from(byte)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_redis_does() {
        let mut out = String::new();
        quote(&mut out, b"a\"b\\c\n\r\t\x07\x08\x00\xc3\xa9 ~");
        assert_eq!(out, r#""a\"b\\c\n\r\t\a\b\x00\xc3\xa9 ~""#);
    }
}
