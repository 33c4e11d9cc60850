//! The JSON Canonicalization Scheme (JCS, RFC 8785): one exact text for
//! each JSON value.
//!
//! Plain JSON leaves many choices open: key order, whitespace, how a string
//! escapes a character, and how a number is spelled (`1`, `1.0`, `1e0`,
//! `10E-1`). JCS removes every one of them, so two equal values always
//! produce the same bytes. The trace files published from the journal are
//! written this way, so that identical state gives byte-identical trace
//! files: they can be compared with `cmp`, hashed, and rewritten without a
//! spurious diff.
//!
//! The rules, all from RFC 8785:
//!
//! * No whitespace anywhere.
//! * Object members are sorted by their keys compared as sequences of
//!   UTF-16 code units ([`cmp_keys`]), not by bytes or by code points.
//! * Strings ([`write_str`]) escape only what JSON requires: `"` and `\`,
//!   the five control characters with a short form (`\b \f \n \r \t`), the
//!   other characters below U+0020 as `\u00xx` with lowercase hex.
//!   Everything else, including non-ASCII, U+2028, U+2029 and DEL, is written
//!   as itself, UTF-8 encoded.
//! * Numbers are IEEE 754 doubles written the way ECMAScript's
//!   `Number.prototype.toString` writes them ([`write_f64`]): the shortest
//!   digits that read back as the same double, plain decimal notation when
//!   `1e-6 <= |n| < 1e21`, exponent notation (`1e+21`, `1.5e-7`) outside
//!   that range, no `.0` on integers, and `-0` as `0`.
//!
//! Non-finite numbers (NaN, infinities) have no JSON spelling; serde_json
//! never holds one in a [`Value`], and [`write_f64`] writes `null` for them.
//!
//! RFC 8785 also requires the input to be I-JSON: [`canonicalize`] rejects
//! duplicate object keys rather than silently keeping one of them, and reads
//! every number with a correctly rounded conversion (serde_json's own
//! default float parser may be one unit in the last place off, which would
//! make canonical output depend on the parser instead of the value).

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Largest integer magnitude up to which every integer is exactly a double
/// (2^53).
const EXACT_INTEGER_LIMIT: u64 = 1 << 53;

/// The canonical text of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Parses `json_text` and returns its canonical text.
///
/// The text must be valid JSON (RFC 8259) with no duplicate key in any
/// object and no number too large for a double; otherwise the error says
/// what is wrong. Numbers are read with a correctly rounded conversion, so
/// `canonicalize(&canonicalize(x)?)` is always `canonicalize(x)`.
pub fn canonicalize(json_text: &str) -> Result<String, serde_json::Error> {
    // serde_json checks the grammar, string escapes, nesting depth and the
    // range of numbers, and gives errors with a line and column. Its value
    // is then discarded: it may hold a float one unit in the last place off
    // and it has dropped duplicate keys. The second pass reads the text
    // again, knowing it is well formed.
    serde_json::from_str::<Value>(json_text)?;
    let mut parser = Parser {
        text: json_text,
        pos: 0,
    };
    parser.skip_whitespace();
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos != json_text.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(to_string(&value))
}

/// Appends the canonical text of `value` to `out`.
///
/// Object members are written in [`cmp_keys`] order whatever order the map
/// holds them in. Integers go through [`write_u64`] or [`write_i64`],
/// floats through [`write_f64`].
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        write_u64(out, u);
    } else if let Some(i) = n.as_i64() {
        write_i64(out, i);
    } else if let Some(f) = n.as_f64() {
        write_f64(out, f);
    } else {
        // Not reachable without serde_json's arbitrary_precision feature,
        // which this crate does not enable.
        out.push_str("null");
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| cmp_keys(a.0, b.0));
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

/// Compares two object keys the way RFC 8785 §3.2.3 sorts them: as
/// sequences of UTF-16 code units.
///
/// This differs from comparing bytes or code points only between a
/// character above U+FFFF (two surrogate code units, 0xD800 to 0xDFFF) and
/// one in U+E000..=U+FFFF: `"\u{1F600}"` sorts *before* `"\u{E000}"`.
pub fn cmp_keys(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Appends `s` as a JSON string literal, escaped as RFC 8785 §3.2.2.2
/// says: `\"` and `\\`; `\b`, `\f`, `\n`, `\r`, `\t` for those five control
/// characters; `\u00xx` (lowercase hex) for the other characters below
/// U+0020; every other character as itself.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    // Copy runs of characters that need no escape in one piece.
    let mut run_start = 0;
    for (i, b) in s.bytes().enumerate() {
        // Every byte that needs an escape is ASCII, so `i` is always a
        // character boundary when it matters.
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run_start..i]);
        if short.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(short);
        }
        run_start = i + 1;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

/// Appends the unsigned integer `n` as a JSON number.
///
/// JCS numbers are IEEE 754 doubles. Up to 2^53 every integer is exactly a
/// double and is written as its digits. Above that, `n` is written as the
/// double it rounds to (round to nearest, ties to even), through
/// [`write_f64`]: `u64::MAX` becomes `18446744073709552000`, and
/// 2^53 + 1 becomes `9007199254740992`. A reader that reads numbers as
/// doubles sees the same value either way; this way the text is the same
/// whether the number was held as an integer or as a float.
pub fn write_u64(out: &mut String, n: u64) {
    if n <= EXACT_INTEGER_LIMIT {
        let _ = write!(out, "{n}");
    } else {
        write_f64(out, n as f64);
    }
}

/// Appends the signed integer `n` as a JSON number: exact digits when
/// `|n| <= 2^53`, otherwise the double it rounds to, as for [`write_u64`].
pub fn write_i64(out: &mut String, n: i64) {
    if n.unsigned_abs() <= EXACT_INTEGER_LIMIT {
        let _ = write!(out, "{n}");
    } else {
        write_f64(out, n as f64);
    }
}

/// Appends the double `n` as ECMAScript's `Number.prototype.toString`
/// writes it, which is what RFC 8785 §3.2.2.3 requires.
///
/// The digits are the fewest that read back as exactly `n`; when two
/// spellings with that many digits are equally close to `n`, the one with
/// the even last digit wins (`1424953923781206.25` is written
/// `1424953923781206.2`). With `k` digits and the decimal point after the
/// `p`-th digit (`n = 0.d1..dk × 10^p`):
///
/// * `k <= p <= 21`: the digits then `p - k` zeros (`1e20` is
///   `100000000000000000000`, `4.0` is `4`);
/// * `0 < p <= 21`: the digits with a point after the `p`-th (`4.5`);
/// * `-6 < p <= 0`: `0.`, `-p` zeros, the digits (`0.000001`);
/// * otherwise exponent notation, the exponent always signed: `1e+21`,
///   `1e-7`, `1.5e-7`, `5e-324`.
///
/// So plain notation is used exactly when `1e-6 <= |n| < 1e21`. Zero of
/// either sign is `0`. NaN and the infinities cannot appear in JSON: they
/// are written as `null` (as ECMAScript's `JSON.stringify` does); no caller
/// in this crate passes one.
pub fn write_f64(out: &mut String, n: f64) {
    if !n.is_finite() {
        out.push_str("null");
        return;
    }
    if n == 0.0 {
        out.push('0');
        return;
    }
    if n < 0.0 {
        out.push('-');
    }
    let (digits, point) = shortest_digits(n.abs());
    let k = digits.len() as i32;
    if k <= point && point <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (point - k) as usize));
    } else if 0 < point && point <= 21 {
        let (int, frac) = digits.split_at(point as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let exponent = point - 1;
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{}", exponent.unsigned_abs());
    }
}

/// The shortest round-trip digits of the positive finite double `x`, as
/// ECMAScript chooses them, and the position of the decimal point: `x` is
/// `0.DIGITS × 10^point`. The digits have no leading or trailing zero.
fn shortest_digits(x: f64) -> (String, i32) {
    // Rust's `{:e}` gives the shortest digits that round-trip, closest to
    // `x` among those, as `d.ddde-7` or `de21`.
    let text = format!("{x:e}");
    let (mantissa, exponent) = text
        .split_once('e')
        .expect("`{:e}` output always has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    // `x` is `digits × 10^scale`.
    let scale = exponent + 1 - digits.len() as i32;
    if let Some(even) = tie_to_even(x, &digits, scale) {
        digits = even.to_string();
        let mut scale = scale;
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
            scale += 1;
        }
        let point = scale + digits.len() as i32;
        return (digits, point);
    }
    (digits, exponent + 1)
}

/// Where `x` lies exactly halfway between two shortest spellings, Rust's
/// formatter rounds up (giving `...206.3` for `...206.25`) while ECMAScript
/// picks the one with the even last digit.
/// Returns the even one's digits (at the same `scale`) when it differs from
/// `digits` and also reads back as `x`; `None` otherwise.
///
/// A tie needs the exact decimal value of `x` to have exactly one digit more
/// than `digits`, the last being 5. Writing `x = m × 2^e` with `m` odd: if
/// `e >= 0`, the two candidates are at least `5 × 10^e` from `x`, more
/// than half a unit in the last place, so neither reads back as `x`; if
/// `e < 0`, the exact value is `m × 5^-e × 10^e`, whose digits are the
/// integer `m × 5^-e`.
fn tie_to_even(x: f64, digits: &str, scale: i32) -> Option<u64> {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let zeros = m.trailing_zeros();
    m >>= zeros;
    e += zeros as i32;
    if e >= 0 {
        return None;
    }
    let j = e.unsigned_abs();
    // At most 17 shortest digits, so a tie has at most 18 exact digits;
    // 5^26 > 10^18 already.
    if j > 26 {
        return None;
    }
    let exact = u128::from(m) * 5u128.pow(j);
    let k = digits.len() as u32;
    if exact < 10u128.pow(k) || exact >= 10u128.pow(k + 1) || scale != 1 - j as i32 {
        return None;
    }
    let current: u64 = digits.parse().ok()?;
    let lower = u64::try_from(exact / 10).ok()?;
    let other = if current == lower {
        lower + 1
    } else if current == lower + 1 {
        lower
    } else {
        return None;
    };
    if current.is_multiple_of(2) || !other.is_multiple_of(2) {
        return None;
    }
    let reads_back = format!("{other}e{scale}").parse::<f64>().ok()? == x;
    reads_back.then_some(other)
}

/// The second pass of [`canonicalize`]: a recursive-descent reader for text
/// serde_json has already accepted (so nesting depth is bounded by its
/// recursion limit). Strings are decoded by serde_json; numbers are read
/// with Rust's correctly rounded parsers; duplicate keys are an error.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> serde_json::Error {
        <serde_json::Error as serde::de::Error>::custom(format!("{what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), serde_json::Error> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", byte as char)))
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, serde_json::Error> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn value(&mut self) -> Result<Value, serde_json::Error> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn object(&mut self) -> Result<Value, serde_json::Error> {
        self.expect(b'{')?;
        let mut map = Map::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_whitespace();
            let key_pos = self.pos;
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            let value = self.value()?;
            if map.contains_key(&key) {
                self.pos = key_pos;
                return Err(self.error(&format!("duplicate object key {key:?}")));
            }
            map.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, serde_json::Error> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn string(&mut self) -> Result<String, serde_json::Error> {
        let start = self.pos;
        self.expect(b'"')?;
        loop {
            match self.peek() {
                Some(b'\\') => self.pos += 2,
                Some(b'"') => break,
                Some(_) => self.pos += 1,
                None => return Err(self.error("unterminated string")),
            }
        }
        self.pos += 1;
        // Both ends are ASCII quotes, so the slice is on char boundaries.
        let literal = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.error("invalid string"))?;
        serde_json::from_str(literal)
    }

    fn number(&mut self) -> Result<Value, serde_json::Error> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.pos += 1;
        }
        let token = &self.text[start..self.pos];
        let integer = !token.contains(['.', 'e', 'E']);
        if integer {
            if let Ok(u) = token.parse::<u64>() {
                return Ok(Value::from(u));
            }
            if let Ok(i) = token.parse::<i64>() {
                return Ok(Value::from(i));
            }
        }
        let f: f64 = token.parse().map_err(|_| self.error("invalid number"))?;
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| self.error("number out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: f64) -> String {
        let mut out = String::new();
        write_f64(&mut out, n);
        out
    }

    fn bits(b: u64) -> String {
        f(f64::from_bits(b))
    }

    fn s(text: &str) -> String {
        let mut out = String::new();
        write_str(&mut out, text);
        out
    }

    /// RFC 8785 Appendix B, finite values (checked against V8).
    #[test]
    fn rfc_8785_appendix_b_numbers() {
        let table: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            // Exactly ...206.25: a tie, broken towards the even digit.
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(b, want) in table {
            assert_eq!(bits(b), want, "bits {b:#018x}");
        }
    }

    #[test]
    fn number_layout_thresholds() {
        let table: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (4.5, "4.5"),
            (0.002, "0.002"),
            (2e-3, "0.002"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1.5e21, "1.5e+21"),
            (1e30, "1e+30"),
            (1e-6, "0.000001"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e-27, "1e-27"),
            (-1e-7, "-1e-7"),
            (9007199254740992.0, "9007199254740992"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (100.0, "100"),
            (123.456, "123.456"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (f64::NEG_INFINITY, "null"),
        ];
        for &(n, want) in table {
            assert_eq!(f(n), want, "{n:e}");
        }
    }

    /// Values exactly halfway between two shortest spellings (checked
    /// against V8): ECMAScript takes the even last digit, Rust's formatter
    /// the upper one.
    #[test]
    fn ties_go_to_the_even_digit() {
        let table: &[(&str, &str)] = &[
            ("1424953923781206.25", "1424953923781206.2"),
            ("1424953923781206.75", "1424953923781206.8"),
            ("1125899906842624.25", "1125899906842624.2"),
            ("2251799813685247.75", "2251799813685247.8"),
            ("1999999999999999.25", "1999999999999999.2"),
            ("-1424953923781206.25", "-1424953923781206.2"),
        ];
        for &(text, want) in table {
            let n: f64 = text.parse().unwrap();
            // The input is exactly a double: a true tie.
            assert_eq!(format!("{n:.2}"), text);
            assert_eq!(f(n), want, "{text}");
        }
    }

    #[test]
    fn integers() {
        let u = |n: u64| {
            let mut out = String::new();
            write_u64(&mut out, n);
            out
        };
        let i = |n: i64| {
            let mut out = String::new();
            write_i64(&mut out, n);
            out
        };
        assert_eq!(u(0), "0");
        assert_eq!(u(1 << 53), "9007199254740992");
        assert_eq!(u((1 << 53) + 1), "9007199254740992", "rounds to even");
        assert_eq!(u((1 << 53) + 2), "9007199254740994");
        assert_eq!(u(u64::MAX), "18446744073709552000");
        assert_eq!(i(0), "0");
        assert_eq!(i(-1), "-1");
        assert_eq!(i(-(1 << 53)), "-9007199254740992");
        assert_eq!(i(-(1 << 53) - 1), "-9007199254740992");
        assert_eq!(i(i64::MIN), "-9223372036854776000");
        assert_eq!(i(i64::MAX), "9223372036854776000");
    }

    #[test]
    fn integer_and_float_spellings_of_one_value_agree() {
        for n in [
            0u64,
            1,
            42,
            1 << 40,
            1 << 53,
            (1 << 53) + 1,
            1 << 60,
            u64::MAX,
        ] {
            let mut int = String::new();
            write_u64(&mut int, n);
            assert_eq!(int, f(n as f64), "{n}");
        }
        assert_eq!(to_string(&json!(1.0)), to_string(&json!(1)));
        assert_eq!(to_string(&json!(-7.0)), to_string(&json!(-7)));
    }

    #[test]
    fn string_escapes() {
        assert_eq!(s(""), r#""""#);
        assert_eq!(s("plain"), r#""plain""#);
        assert_eq!(s("q\"b\\s/"), r#""q\"b\\s/""#);
        assert_eq!(
            s("\u{8}\u{c}\n\r\t"),
            r#""\b\f\n\r\t""#,
            "the five short escapes"
        );
        assert_eq!(s("\u{0}\u{1}\u{b}\u{1f}"), r#""\u0000\u0001\u000b\u001f""#);
        assert_eq!(s("\u{7f}"), "\"\u{7f}\"", "DEL is written as itself");
        assert_eq!(s("a\u{2028}b\u{2029}c"), "\"a\u{2028}b\u{2029}c\"");
        assert_eq!(s("é€😀"), "\"é€😀\"");
        assert_eq!(s("<\u{1}é\u{1}>"), "\"<\\u0001é\\u0001>\"");
    }

    /// RFC 8785 §3.2.2: strings and numbers of the sample object.
    #[test]
    fn rfc_8785_sample() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let want = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(canonicalize(input).unwrap(), want);
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // Byte (and code point) order would put U+E000 first.
        assert_eq!(cmp_keys("\u{e000}", "\u{1f600}"), Ordering::Greater);
        assert_eq!(cmp_keys("\u{1f600}", "\u{e000}"), Ordering::Less);
        assert!("\u{e000}".as_bytes() < "\u{1f600}".as_bytes());
        assert_eq!(cmp_keys("a", "ab"), Ordering::Less);
        assert_eq!(cmp_keys("", ""), Ordering::Equal);
        assert_eq!(cmp_keys("B", "a"), Ordering::Less);

        // The keys of RFC 8785 §3.2.3's example, in its sorted order.
        let value = json!({
            "\u{20ac}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1f600}": "Emoji: Grinning Face",
            "\u{80}": "Control",
            "\u{f6}": "Latin Small Letter O With Diaeresis",
        });
        assert_eq!(
            to_string(&value),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\
             \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    #[test]
    fn nested_values() {
        let value = json!({
            "z": [1, {"b": null, "a": [true, false, "x"]}, []],
            "a": {"y": {}, "x": -0.5e-10},
            "": 0,
        });
        assert_eq!(
            to_string(&value),
            r#"{"":0,"a":{"x":-5e-11,"y":{}},"z":[1,{"a":[true,false,"x"],"b":null},[]]}"#
        );
        let mut out = String::from("prefix ");
        write_value(&mut out, &json!([1]));
        assert_eq!(out, "prefix [1]");
    }

    #[test]
    fn canonicalize_is_idempotent() {
        let inputs = [
            "0",
            " -0 ",
            "-0.0",
            "1E400000000000000000000000000000000000000000000000000000000000000000000000000000",
            "[1e-7, 1e21, 12345678901234567890123, -9223372036854775809, 18446744073709551616]",
            r#"{"b": "\ud83d\ude00", "a": "\u00e9", "\ue000": 1, "c": {"y": [], "x": {}}}"#,
            r#"{"numbers": [1.0, 10E-1, 0.1e1, 100e-2, 5e-324, 2.2250738585072014E-308]}"#,
            r#""\u0000\u001F\b\f\n\r\t\/\\\"""#,
            "[1.0715660391465826e-75, -1.81996730402717e-179, 1.603964615428183e143]",
        ];
        for input in inputs {
            let Ok(once) = canonicalize(input) else {
                assert!(input.starts_with("1E4"), "{input}");
                continue;
            };
            assert_eq!(canonicalize(&once).unwrap(), once, "{input}");
        }
        assert_eq!(canonicalize(" -0 ").unwrap(), "0");
        assert_eq!(
            canonicalize(r#"{"numbers": [1.0, 10E-1, 0.1e1, 100e-2]}"#).unwrap(),
            r#"{"numbers":[1,1,1,1]}"#
        );
        // serde_json's default float parser reads these one unit in the
        // last place off; canonicalize must not.
        assert_eq!(
            canonicalize("[1.0715660391465826e-75, -1.81996730402717e-179, 1.603964615428183e143]")
                .unwrap(),
            "[1.0715660391465826e-75,-1.81996730402717e-179,1.603964615428183e+143]"
        );
    }

    #[test]
    fn canonicalize_rejects_what_jcs_rejects() {
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "NaN",
            "1e400",
            "-1e400",
            r#""\ud800""#,
            "[1] x",
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": 1, "\u0061": 1}"#,
            r#"[{"x": {"k": 1, "j": 2, "k": 3}}]"#,
        ] {
            assert!(canonicalize(bad).is_err(), "{bad:?}");
        }
        let err = canonicalize(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(
            err.to_string().contains("duplicate object key \"a\""),
            "{err}"
        );
    }

    /// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn random_doubles_round_trip() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut checked = 0;
        while checked < 100_000 {
            let raw = rng.next();
            // Half of the draws are arbitrary bit patterns; the other half
            // are short decimals and integers, where layout rules bite.
            let n = if raw & 1 == 0 {
                f64::from_bits(rng.next())
            } else {
                let mantissa = (rng.next() % 10_000_000_000_000_000) as f64;
                let exponent = (rng.next() % 60) as i32 - 30;
                mantissa * 10f64.powi(exponent)
            };
            if !n.is_finite() {
                continue;
            }
            checked += 1;
            let text = f(n);
            assert_eq!(text.parse::<f64>().unwrap(), n, "{n:e} -> {text}");
            assert!(!text.ends_with(".0") && !text.contains("e0"), "{text}");
            let canonical = canonicalize(&text).unwrap();
            assert_eq!(canonical, text, "{n:e}");
        }
    }
}
