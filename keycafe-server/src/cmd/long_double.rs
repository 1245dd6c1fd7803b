//! INCRBYFLOAT's arithmetic: the 80-bit `long double` Redis computes in.
//!
//! Redis parses the stored value and the increment with `strtold`, adds them
//! as C `long double`s and stores the sum printed with `%.17Lf`, trailing
//! zeros removed. On x86-64 Linux a `long double` is the x87 extended type:
//! a 64-bit significand and a 15-bit exponent. Its extra eleven bits are
//! visible to clients: `0.1 + 0.2` prints as `0.3` (an `f64` gives
//! `0.30000000000000004`), and `1e30` as `1000000000000000000024696061952`.
//! So Keycafe computes as that type does rather than in `f64`.
//!
//! A [`LongDouble`] is a sign, a 64-bit significand and a binary exponent.
//! Each step — decimal (or hexadecimal) text to a value, the sum, the value to
//! 17 decimals — is done exactly in big integers and rounded once, to nearest
//! with ties to even: what the x87 unit does for the sum and what glibc's
//! `strtold` and `printf` do for the conversions. The cost grows with the
//! number of digits and the spread of the exponents, which the longest text
//! Redis accepts (5 KiB) bounds; for everyday numbers the integers are a word
//! or two.

use num_bigint::BigUint;

/// The longest text Redis parses as a number (`MAX_LONG_DOUBLE_CHARS`), plus
/// one for its terminating NUL: longer texts are not valid floats.
const MAX_TEXT: usize = 5 * 1024;

/// Bits of the significand.
const SIGNIFICAND_BITS: i64 = 64;
/// The exponent of the smallest subnormal, 2^-16445: the weight of the
/// significand's last bit can go no lower.
const MIN_EXPONENT: i64 = -16445;
/// The largest exponent a 64-bit significand can have: the largest finite
/// value is (2^64 - 1) × 2^16320.
const MAX_EXPONENT: i64 = 16320;
/// `%.17Lf`: digits after the decimal point.
const DECIMALS: usize = 17;

/// A finite `long double`: `(-1)^negative × significand × 2^exponent`. Zero
/// has a zero significand (and no sign: nothing Redis prints tells them
/// apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongDouble {
    negative: bool,
    significand: u64,
    exponent: i64,
}

/// A number as `strtold` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    Finite(LongDouble),
    /// `inf`, `-infinity`, ...: accepted, but any sum with it is refused.
    Infinite,
}

impl LongDouble {
    /// 0, what INCRBYFLOAT starts an absent key from.
    pub const ZERO: LongDouble = LongDouble {
        negative: false,
        significand: 0,
        exponent: 0,
    };

    /// The sum, rounded as the x87 unit rounds it, or `None` if it
    /// overflows (Redis: "increment would produce NaN or Infinity").
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        if self.significand == 0 {
            return Some(other);
        }
        if other.significand == 0 {
            return Some(self);
        }
        // Exact: both significands over the smaller exponent.
        let base = self.exponent.min(other.exponent);
        let a = BigUint::from(self.significand) << (self.exponent - base) as u64;
        let b = BigUint::from(other.significand) << (other.exponent - base) as u64;
        let (sum, negative) = if self.negative == other.negative {
            (a + b, self.negative)
        } else if a >= b {
            (a - b, self.negative)
        } else {
            (b - a, other.negative)
        };
        round(&sum, base, false, negative)
    }

    /// Redis's text for the value: `printf("%.17Lf")` with the trailing
    /// zeros (and a bare point) removed, and `-0` written `0`.
    pub fn to_redis_string(self) -> String {
        let scaled = BigUint::from(self.significand) * BigUint::from(10u64.pow(DECIMALS as u32));
        let units = if self.exponent >= 0 {
            scaled << self.exponent as u64
        } else {
            let shift = self.exponent.unsigned_abs();
            let kept = &scaled >> shift;
            round_half_even(kept, &scaled, shift, false)
        };
        let digits = format!("{units:0>width$}", width = DECIMALS + 1);
        let (whole, fraction) = digits.split_at(digits.len() - DECIMALS);
        let fraction = fraction.trim_end_matches('0');
        let mut text = String::with_capacity(digits.len() + 2);
        if self.negative && (whole != "0" || !fraction.is_empty()) {
            text.push('-');
        }
        text.push_str(whole);
        if !fraction.is_empty() {
            text.push('.');
            text.push_str(fraction);
        }
        text
    }
}

impl Number {
    /// Reads `text` as Redis's `string2ld` does: `strtold`'s syntax
    /// (decimal or `0x` hexadecimal, with an exponent; `inf`; `nan`) with
    /// nothing before or after it, no more than 5119 bytes, and refusing
    /// NaN, a value too large for the type, and a non-zero value so small it
    /// rounds to zero. `None` is Redis's "value is not a valid float".
    pub fn parse(text: &[u8]) -> Option<Number> {
        if text.is_empty() || text.len() >= MAX_TEXT {
            return None;
        }
        let (negative, rest) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
            return Some(Number::Infinite);
        }
        let value = match rest {
            [b'0', b'x' | b'X', digits @ ..] => parse_hex(digits, negative)?,
            _ => parse_decimal(rest, negative)?,
        };
        Some(Number::Finite(value))
    }
}

/// Reads `digits [. digits] [e|E [+|-] digits]` (at least one digit before
/// the exponent) as a [`LongDouble`].
fn parse_decimal(text: &[u8], negative: bool) -> Option<LongDouble> {
    let (mantissa, exponent) = split_exponent(text, b'e')?;
    let (digits, fraction_len) = mantissa_digits(mantissa, 10)?;
    // The value is digits × 10^exponent.
    let exponent = exponent.checked_sub(i64::try_from(fraction_len).ok()?)?;
    let digits = BigUint::parse_bytes(&digits, 10)?;
    if digits.bits() == 0 {
        return Some(LongDouble::ZERO);
    }
    // log2(10) is about 3.32: far outside the type's range either way, the
    // result is an overflow or rounds to zero, both refused, so the big
    // integers below stay small.
    let bits = digits.bits() as f64;
    let log2 = bits + exponent as f64 * std::f64::consts::LOG2_10;
    if !(-16_500.0..=16_500.0).contains(&log2) {
        return None;
    }
    // 10^e = 5^e × 2^e: the power of two goes into the binary exponent.
    let value = if exponent >= 0 {
        let n = digits * BigUint::from(5u32).pow(exponent as u32);
        round(&n, exponent, false, negative)?
    } else {
        let k = exponent.unsigned_abs();
        let divisor = BigUint::from(5u32).pow(k as u32);
        // Scale so that the quotient has at least 66 bits: 64 to keep, one
        // to round by, and one to spare; the remainder says whether the
        // value lies strictly between two quotients.
        let shift = (66 + divisor.bits()).saturating_sub(digits.bits());
        let scaled = digits << shift;
        let quotient = &scaled / &divisor;
        let inexact = (&scaled % &divisor).bits() != 0;
        round(&quotient, -(k as i64) - shift as i64, inexact, negative)?
    };
    // A non-zero text that rounds to zero underflowed: `strtold` reports
    // ERANGE, which Redis refuses.
    (value.significand != 0).then_some(value)
}

/// Reads the part of a hexadecimal float after `0x`: `hexdigits [.
/// hexdigits] [p|P [+|-] digits]`, the exponent a power of two.
fn parse_hex(text: &[u8], negative: bool) -> Option<LongDouble> {
    let (mantissa, exponent) = split_exponent(text, b'p')?;
    let (digits, fraction_len) = mantissa_digits(mantissa, 16)?;
    let exponent = exponent.checked_sub(4 * i64::try_from(fraction_len).ok()?)?;
    let digits = BigUint::parse_bytes(&digits, 16)?;
    if digits.bits() == 0 {
        return Some(LongDouble::ZERO);
    }
    let top = digits.bits() as i64 + exponent;
    if !(-16_500..=16_500).contains(&top) {
        return None;
    }
    let value = round(&digits, exponent, false, negative)?;
    (value.significand != 0).then_some(value)
}

/// Splits `mantissa [marker [+|-] digits]` (the marker in either case),
/// reading the exponent with saturation: an exponent beyond ±10^12 is out of
/// range whatever the mantissa.
fn split_exponent(text: &[u8], marker: u8) -> Option<(&[u8], i64)> {
    let Some(at) = text.iter().position(|b| b.to_ascii_lowercase() == marker) else {
        return Some((text, 0));
    };
    let (mantissa, rest) = (&text[..at], &text[at + 1..]);
    let (negative, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |acc, d| {
        (acc * 10 + i64::from(d - b'0')).min(1_000_000_000_000)
    });
    Some((mantissa, if negative { -magnitude } else { magnitude }))
}

/// The digits of `digits [. digits]` (at least one) in `radix`, without the
/// point, and how many came after it.
fn mantissa_digits(text: &[u8], radix: u32) -> Option<(Vec<u8>, usize)> {
    let is_digit = |b: &u8| char::from(*b).is_digit(radix);
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &text[..0]),
    };
    if whole.len() + fraction.len() == 0
        || !whole.iter().all(is_digit)
        || !fraction.iter().all(is_digit)
    {
        return None;
    }
    Some(([whole, fraction].concat(), fraction.len()))
}

/// Rounds `n × 2^exponent` (plus a little more if `inexact`: less than the
/// weight of `n`'s last bit) to a [`LongDouble`]: to 64 significant bits, or
/// fewer for a subnormal, to nearest with ties to even. `None` if it
/// overflows. Callers that pass `inexact` give `n` at least 66 bits, so the
/// extra never decides more than a tie.
fn round(n: &BigUint, exponent: i64, inexact: bool, negative: bool) -> Option<LongDouble> {
    let bits = n.bits() as i64;
    if bits == 0 {
        return Some(LongDouble::ZERO);
    }
    // The weight of the last bit kept.
    let last = (exponent + bits - SIGNIFICAND_BITS).max(MIN_EXPONENT);
    let (significand, last) = if last <= exponent {
        let exact = n << (exponent - last) as u64;
        (low_u64(&exact), last)
    } else {
        let shift = (last - exponent) as u64;
        let rounded = round_half_even(n >> shift, n, shift, inexact);
        match u64::try_from(&rounded) {
            Ok(significand) => (significand, last),
            // Rounded up to 2^64: one bit fewer, one weight up.
            Err(_) => (1 << 63, last + 1),
        }
    };
    if last > MAX_EXPONENT {
        return None;
    }
    Some(match significand {
        0 => LongDouble::ZERO,
        _ => LongDouble {
            negative,
            significand,
            exponent: last,
        },
    })
}

/// `kept` is `n >> shift`; rounds it by the bits shifted out (and `inexact`,
/// anything below those), to nearest, ties to even.
fn round_half_even(kept: BigUint, n: &BigUint, shift: u64, inexact: bool) -> BigUint {
    if shift == 0 {
        return kept;
    }
    let half = n.bit(shift - 1);
    let below = inexact || n.trailing_zeros().is_some_and(|zeros| zeros < shift - 1);
    if half && (below || kept.bit(0)) {
        kept + 1u32
    } else {
        kept
    }
}

fn low_u64(n: &BigUint) -> u64 {
    n.iter_u64_digits().next().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finite(text: &str) -> LongDouble {
        match Number::parse(text.as_bytes()) {
            Some(Number::Finite(value)) => value,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn sum(a: &str, b: &str) -> String {
        finite(a)
            .checked_add(finite(b))
            .expect("finite sum")
            .to_redis_string()
    }

    fn round_trip(text: &str) -> String {
        finite(text).to_redis_string()
    }

    #[test]
    fn sums_as_redis_prints_them() {
        // Each expected text is redis-server 7.0's reply on x86-64.
        assert_eq!(sum("10.50", "0.1"), "10.6");
        assert_eq!(sum("10.6", "-5"), "5.6");
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("5.0e3", "2.0e2"), "5200");
        assert_eq!(sum("17179869184", "1.5"), "17179869185.5");
        assert_eq!(sum("17179869184", "17179869184"), "34359738368");
        assert_eq!(sum("1", "-1.1"), "-0.1");
        assert_eq!(sum("0", "-0.0"), "0");
        assert_eq!(sum("16", "1e-4940"), "16");
        assert_eq!(sum("0x10", "0"), "16");
        assert_eq!(sum("1e30", "0"), "1000000000000000000024696061952");
    }

    #[test]
    fn formats_with_17_decimals_ties_to_even() {
        // 2^-18 and 3 × 2^-18 end in a 5 at the 18th decimal.
        assert_eq!(round_trip("0.000003814697265625"), "0.00000381469726562");
        assert_eq!(round_trip("0.000011444091796875"), "0.00001144409179688");
        assert_eq!(round_trip("1e-18"), "0");
        assert_eq!(round_trip("-1e-18"), "0");
        assert_eq!(round_trip("-0.5"), "-0.5");
        assert_eq!(round_trip("-0"), "0");
        assert_eq!(round_trip("3"), "3");
        assert_eq!(round_trip("1."), "1");
        assert_eq!(round_trip(".25"), "0.25");
        assert_eq!(round_trip("+2.5E+1"), "25");
        assert_eq!(round_trip("0x1.8p1"), "3");
        assert_eq!(round_trip("0X.8"), "0.5");
        assert_eq!(round_trip("0x1e"), "30");
        assert_eq!(
            round_trip("1e300").get(..40),
            Some("1000000000000000000008997324079559193870")
        );
    }

    #[test]
    fn the_largest_values_are_exact_and_one_more_overflows() {
        let largest = round_trip("1.0e4932");
        assert_eq!(largest.len(), 4933);
        assert!(largest.starts_with("10000000000000000000060189493879638913"));
        assert_eq!(Number::parse(b"1.2e4932"), None);
        let max = finite("0xffffffffffffffffp16320");
        assert_eq!(max.checked_add(finite("0x1p16320")), None);
        assert_eq!(
            max.checked_add(finite("-0x1p16320")).map(|v| v.exponent),
            Some(16320)
        );
    }

    #[test]
    fn subnormals_are_kept_and_underflow_is_refused() {
        let tiny = finite("0x1p-16445");
        assert_eq!((tiny.significand, tiny.exponent), (1, MIN_EXPONENT));
        assert_eq!(finite("1e-4940").exponent, MIN_EXPONENT);
        assert_eq!(Number::parse(b"1e-5000"), None);
        assert_eq!(Number::parse(b"0x1p-16447"), None);
        assert_eq!(finite("0e-99999"), LongDouble::ZERO);
        assert_eq!(finite("0e99999999999999999999"), LongDouble::ZERO);
        assert_eq!(Number::parse(b"1e99999999999999999999"), None);
        // Half the smallest subnormal rounds to even: zero, refused; a
        // little more rounds up to it.
        assert_eq!(Number::parse(b"0x1p-16446"), None);
        assert_eq!(finite("0x1.8p-16446"), tiny);
    }

    #[test]
    fn strtold_syntax_and_nothing_around_it() {
        assert_eq!(Number::parse(b"inf"), Some(Number::Infinite));
        assert_eq!(Number::parse(b"-Infinity"), Some(Number::Infinite));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"1\x002",
            b"nan",
            b"-nan",
            b"nan(1)",
            b"abc",
            b".",
            b"-",
            b"1e",
            b"1e+",
            b"e5",
            b"1.2.3",
            b"0x",
            b"0x.p1",
            b"0x1p",
            b"1p3",
            b"infinit",
            b"--1",
        ] {
            assert_eq!(
                Number::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Leading zeros count towards the limit.
        let mut long = vec![b'0'; MAX_TEXT];
        *long.last_mut().unwrap() = b'7';
        assert_eq!(Number::parse(&long), None);
        assert_eq!(
            Number::parse(&long[1..]).map(|n| n == Number::parse(b"7").unwrap()),
            Some(true)
        );
    }

    #[test]
    fn sums_round_to_64_bits() {
        // 2^64 + 1 needs 65 bits: a tie, rounded to the even 2^64.
        assert_eq!(sum("18446744073709551616", "1"), "18446744073709551616");
        assert_eq!(sum("18446744073709551616", "3"), "18446744073709551620");
        assert_eq!(sum("18446744073709551615", "0"), "18446744073709551615");
        assert_eq!(sum("1e-30", "1"), "1");
        assert_eq!(sum("-3", "3"), "0");
        assert_eq!(sum("-3", "1"), "-2");
        assert_eq!(sum("1", "-3"), "-2");
    }
}
