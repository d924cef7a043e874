//! `percent` or `fixed`, stored as text (checked by `coupons_kind_check`).

use serde::{Deserialize, Serialize};
use sqlx::{
    Decode, Encode, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CouponKind {
    /// `value` percent off the subtotal (1–100).
    Percent,
    /// `value` centavos off the subtotal, never below zero.
    Fixed,
}

impl CouponKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponKind::Percent => "percent",
            CouponKind::Fixed => "fixed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "percent" => Some(CouponKind::Percent),
            "fixed" => Some(CouponKind::Fixed),
            _ => None,
        }
    }
}

impl Type<Postgres> for CouponKind {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for CouponKind {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for CouponKind {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let raw = <&str as Decode<Postgres>>::decode(value)?;
        CouponKind::parse(raw).ok_or_else(|| format!("unknown coupon kind {raw:?}").into())
    }
}
