//! Any column value of any type, as the exporter needs it: a number for a
//! metric, text for a label, following how postgres_exporter converts
//! what its driver hands it (`dbToFloat64`, `dbToString`).
//!
//! Rows are fetched in PostgreSQL's binary format; [`PgValue`] accepts
//! every type and decodes the ones the statistics views use (integers,
//! floats, `numeric`, booleans, timestamps, `oid`, `pg_lsn`, text-like
//! types, `inet`). A type it does not decode is neither a number nor a
//! label, as text that does not parse as a number is not one in
//! postgres_exporter.

use tokio_postgres::types::{FromSql, Type};

/// One decoded column value.
#[derive(Clone, Debug, PartialEq)]
pub enum PgValue {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Seconds since the epoch (whole seconds, as Go's `Time.Unix`).
    Time(i64),
    Text(String),
    /// A type this exporter does not decode.
    Other,
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_SECONDS: i64 = 946_684_800;

impl PgValue {
    /// The value as a metric: `None` when it is not a number (a NULL is
    /// NaN, as in postgres_exporter).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PgValue::Null => Some(f64::NAN),
            PgValue::Int(i) => Some(*i as f64),
            PgValue::Float(f) => Some(*f),
            PgValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            PgValue::Time(t) => Some(*t as f64),
            PgValue::Text(t) => go_parse_float(t),
            PgValue::Other => None,
        }
    }

    /// The value as a label: NULL is empty.
    pub fn as_label(&self) -> String {
        match self {
            PgValue::Null | PgValue::Other => String::new(),
            PgValue::Int(i) => i.to_string(),
            PgValue::Float(f) => f.to_string(),
            PgValue::Bool(b) => b.to_string(),
            PgValue::Time(t) => t.to_string(),
            PgValue::Text(t) => t.clone(),
        }
    }
}

/// A number as Go's `strconv.ParseFloat` reads one (Rust's parser plus
/// Go's spellings of infinity).
fn go_parse_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<PgValue, Box<dyn std::error::Error + Sync + Send>> {
        Ok(decode(ty, raw).unwrap_or(PgValue::Other))
    }

    fn from_sql_null(_: &Type) -> Result<PgValue, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgValue::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn be_i64(raw: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(raw.try_into().ok()?))
}

/// Decodes the binary form of the types the exporter reads; `None` for
/// others or malformed bytes.
pub fn decode(ty: &Type, raw: &[u8]) -> Option<PgValue> {
    Some(match *ty {
        Type::BOOL => PgValue::Bool(*raw.first()? != 0),
        Type::INT2 => PgValue::Int(i64::from(i16::from_be_bytes(raw.try_into().ok()?))),
        Type::INT4 => PgValue::Int(i64::from(i32::from_be_bytes(raw.try_into().ok()?))),
        Type::INT8 => PgValue::Int(be_i64(raw)?),
        Type::OID | Type::XID | Type::CID | Type::REGPROC => {
            PgValue::Int(i64::from(u32::from_be_bytes(raw.try_into().ok()?)))
        }
        Type::FLOAT4 => PgValue::Float(f64::from(f32::from_be_bytes(raw.try_into().ok()?))),
        Type::FLOAT8 => PgValue::Float(f64::from_be_bytes(raw.try_into().ok()?)),
        Type::NUMERIC => PgValue::Float(numeric(raw)?),
        Type::TIMESTAMPTZ | Type::TIMESTAMP => {
            let micros = be_i64(raw)?;
            // infinity / -infinity are i64::MAX / MIN.
            if micros == i64::MAX || micros == i64::MIN {
                return Some(PgValue::Other);
            }
            PgValue::Time(micros.div_euclid(1_000_000) + PG_EPOCH_SECONDS)
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            PgValue::Text(String::from_utf8_lossy(raw).into_owned())
        }
        Type::PG_LSN => {
            let lsn = u64::try_from(be_i64(raw)?).ok()?;
            PgValue::Text(format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff))
        }
        Type::INET | Type::CIDR => PgValue::Text(inet(raw)?),
        _ => return None,
    })
}

/// PostgreSQL's binary `numeric`: digit count, weight, sign and display
/// scale (16 bits each), then base-10000 digits.
pub fn numeric(raw: &[u8]) -> Option<f64> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            raw.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    match sign {
        0xC000 => return Some(f64::NAN),
        0xD000 => return Some(f64::INFINITY),
        0xF000 => return Some(f64::NEG_INFINITY),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    if raw.len() != 8 + ndigits * 2 {
        return None;
    }
    let mut value = 0.0f64;
    for i in 0..ndigits {
        let digit = f64::from(word(4 + i)?);
        let exponent = weight - i as i32;
        value += digit * 10_000f64.powi(exponent);
    }
    Some(if sign == 0x4000 { -value } else { value })
}

/// PostgreSQL's binary `inet`/`cidr` as its text output: the address, and
/// `/bits` when the mask does not cover it all (or for `cidr`).
pub fn inet(raw: &[u8]) -> Option<String> {
    let (&family, rest) = raw.split_first()?;
    let (&bits, rest) = rest.split_first()?;
    let (&is_cidr, rest) = rest.split_first()?;
    let (&length, address) = rest.split_first()?;
    if address.len() != usize::from(length) {
        return None;
    }
    let (text, full) = match (family, address.len()) {
        (2, 4) => (
            std::net::Ipv4Addr::new(address[0], address[1], address[2], address[3]).to_string(),
            32,
        ),
        (3, 16) => {
            let bytes: [u8; 16] = address.try_into().ok()?;
            (std::net::Ipv6Addr::from(bytes).to_string(), 128)
        }
        _ => return None,
    };
    Some(if is_cidr != 0 || bits != full {
        format!("{text}/{bits}")
    } else {
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_labels() {
        assert_eq!(
            decode(&Type::INT8, &42i64.to_be_bytes()),
            Some(PgValue::Int(42))
        );
        assert_eq!(decode(&Type::INT4, &[0, 0]), None);
        assert_eq!(
            decode(&Type::OID, &5u32.to_be_bytes()).unwrap().as_label(),
            "5"
        );
        assert_eq!(decode(&Type::BOOL, &[1]).unwrap().as_f64(), Some(1.0));
        let ts = decode(&Type::TIMESTAMPTZ, &1_500_000i64.to_be_bytes()).unwrap();
        assert_eq!(ts, PgValue::Time(946_684_801));
        assert!(PgValue::Null.as_f64().unwrap().is_nan());
        assert_eq!(PgValue::Null.as_label(), "");
        assert_eq!(PgValue::Text("1.5".into()).as_f64(), Some(1.5));
        assert_eq!(PgValue::Text("idle".into()).as_f64(), None);
        assert_eq!(PgValue::Other.as_f64(), None);
        let lsn = decode(&Type::PG_LSN, &0x1_0000_00ABi64.to_be_bytes()).unwrap();
        assert_eq!(lsn, PgValue::Text("1/AB".into()));
    }

    #[test]
    fn numeric_binary() {
        // 12345.678: digits 1, 2345, 6780; weight 1; scale 3.
        let raw = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert!((numeric(&raw).unwrap() - 12345.678).abs() < 1e-9);
        let negative = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 7];
        assert_eq!(numeric(&negative), Some(-7.0));
        assert!(numeric(&[0, 0, 0, 0, 0xC0, 0, 0, 0]).unwrap().is_nan());
        assert_eq!(numeric(&[0, 1, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(numeric(&[0]), None);
    }

    #[test]
    fn inet_text() {
        assert_eq!(
            inet(&[2, 32, 0, 4, 127, 0, 0, 1]).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            inet(&[2, 24, 1, 4, 10, 0, 0, 0]).as_deref(),
            Some("10.0.0.0/24")
        );
        let mut v6 = vec![3, 128, 0, 16];
        v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(inet(&v6).as_deref(), Some("::1"));
        assert_eq!(inet(&[2, 32, 0, 5, 1, 2, 3, 4]), None);
    }
}
