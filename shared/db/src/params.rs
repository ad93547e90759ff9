//! Statement parameters that carry their PostgreSQL type, so a statement can be sent unnamed, parsed, bound and
//! executed in one round trip, without asking the server to prepare it first. A transaction-mode pooler (Supabase's
//! Supavisor on port 6543, PgBouncer with `pool_mode = transaction`) keeps no prepared statement between
//! transactions, so a named one prepared on one server connection is missing, or a stale one is in the way, on the
//! next.
//!
//! Each Rust type declares the type the server would infer for it, which is what the statements were written
//! against: `i64` is `int8`, `String` is `text`, `Vec<Uuid>` is `uuid[]`, and so on. A parameter of another type
//! than its column's is cast by the server as usual (`int8` into an `int4` column, `text` into `varchar`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

/// A statement parameter: a value and the PostgreSQL type it is sent as.
pub trait SqlParam: ToSql + Sync {
    fn sql_type(&self) -> Type;
}

/// A Rust type's PostgreSQL type.
pub trait SqlType {
    const TYPE: Type;
}

/// A type that can be an array element, and the type of its array.
pub trait SqlArrayElement: SqlType {
    const ARRAY: Type;
}

impl<T: SqlType + ToSql + Sync> SqlParam for T {
    fn sql_type(&self) -> Type {
        T::TYPE
    }
}

macro_rules! sql_types {
    ($($rust:ty => $scalar:ident, $array:ident;)*) => {
        $(
            impl SqlType for $rust {
                const TYPE: Type = Type::$scalar;
            }
            impl SqlArrayElement for $rust {
                const ARRAY: Type = Type::$array;
            }
        )*
    };
}

sql_types! {
    bool => BOOL, BOOL_ARRAY;
    i16 => INT2, INT2_ARRAY;
    i32 => INT4, INT4_ARRAY;
    i64 => INT8, INT8_ARRAY;
    f32 => FLOAT4, FLOAT4_ARRAY;
    f64 => FLOAT8, FLOAT8_ARRAY;
    String => TEXT, TEXT_ARRAY;
    str => TEXT, TEXT_ARRAY;
    Uuid => UUID, UUID_ARRAY;
    Decimal => NUMERIC, NUMERIC_ARRAY;
    DateTime<Utc> => TIMESTAMPTZ, TIMESTAMPTZ_ARRAY;
    NaiveDateTime => TIMESTAMP, TIMESTAMP_ARRAY;
    NaiveDate => DATE, DATE_ARRAY;
    serde_json::Value => JSONB, JSONB_ARRAY;
}

impl<T> SqlType for Json<T> {
    const TYPE: Type = Type::JSONB;
}

impl<T: SqlType + ?Sized> SqlType for &T {
    const TYPE: Type = T::TYPE;
}

impl<T: SqlArrayElement + ?Sized> SqlArrayElement for &T {
    const ARRAY: Type = T::ARRAY;
}

impl<T: SqlType> SqlType for Option<T> {
    const TYPE: Type = T::TYPE;
}

impl<T: SqlArrayElement> SqlArrayElement for Option<T> {
    const ARRAY: Type = T::ARRAY;
}

impl<T: SqlArrayElement> SqlType for Vec<T> {
    const TYPE: Type = T::ARRAY;
}

impl<T: SqlArrayElement> SqlType for [T] {
    const TYPE: Type = T::ARRAY;
}

impl<T: SqlArrayElement, const N: usize> SqlType for [T; N] {
    const TYPE: Type = T::ARRAY;
}

/// The parameters as tokio-postgres's typed query takes them.
pub(crate) fn typed<'a>(params: &'a [&'a dyn SqlParam]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|param| (*param as &(dyn ToSql + Sync), param.sql_type()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of(param: &dyn SqlParam) -> Type {
        param.sql_type()
    }

    #[test]
    fn each_rust_type_declares_the_type_the_server_would_infer() {
        assert_eq!(type_of(&1_i64), Type::INT8);
        assert_eq!(type_of(&1_i32), Type::INT4);
        assert_eq!(type_of(&"text"), Type::TEXT);
        assert_eq!(type_of(&String::new()), Type::TEXT);
        assert_eq!(type_of(&Some(2.5_f64)), Type::FLOAT8);
        assert_eq!(type_of(&None::<Uuid>), Type::UUID);
        assert_eq!(type_of(&vec![Uuid::nil()]), Type::UUID_ARRAY);
        assert_eq!(type_of(&Vec::<&str>::new()), Type::TEXT_ARRAY);
        assert_eq!(type_of(&[1_i64, 2].as_slice()), Type::INT8_ARRAY);
        assert_eq!(type_of(&Some(vec![Decimal::ONE])), Type::NUMERIC_ARRAY);
        assert_eq!(type_of(&serde_json::json!({})), Type::JSONB);
        assert_eq!(type_of(&Utc::now()), Type::TIMESTAMPTZ);
    }
}
