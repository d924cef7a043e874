//! The rules a coupon must pass, as pure functions over its row, so carts, checkout and
//! [`super::redeem`] explain a refusal the same way.

use chrono::{DateTime, Utc};

use super::{Coupon, CouponKind};
use crate::{Error, money::format_brl};

/// Why a coupon cannot be used now. Shown to the customer as a 422 field error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inapplicable {
    Unknown,
    Inactive,
    NotStarted,
    Expired,
    Exhausted,
    UserLimitReached,
    BelowMinimum { min_subtotal_cents: i64 },
}

impl Inapplicable {
    pub fn message(&self) -> String {
        match self {
            Inapplicable::Unknown => "unknown coupon".into(),
            Inapplicable::Inactive => "this coupon is not active".into(),
            Inapplicable::NotStarted => "this coupon is not valid yet".into(),
            Inapplicable::Expired => "this coupon has expired".into(),
            Inapplicable::Exhausted => "this coupon has been used up".into(),
            Inapplicable::UserLimitReached => {
                "you have already used this coupon as often as allowed".into()
            }
            Inapplicable::BelowMinimum { min_subtotal_cents } => format!(
                "this coupon needs a subtotal of at least {}",
                format_brl(*min_subtotal_cents)
            ),
        }
    }

    /// A 422 on `field`.
    pub fn into_error(self, field: &str) -> Error {
        Error::invalid(field, self.message())
    }
}

/// The first rule `coupon` breaks for a user who has used it `user_uses` times, on a cart of
/// `subtotal_cents`, at `now`; `None` when it applies.
pub fn inapplicable_reason(
    coupon: &Coupon,
    now: DateTime<Utc>,
    user_uses: i32,
    subtotal_cents: i64,
) -> Option<Inapplicable> {
    if !coupon.active {
        Some(Inapplicable::Inactive)
    } else if coupon.starts_at.is_some_and(|starts| now < starts) {
        Some(Inapplicable::NotStarted)
    } else if coupon.ends_at.is_some_and(|ends| now >= ends) {
        Some(Inapplicable::Expired)
    } else if coupon.max_uses.is_some_and(|max| coupon.uses >= max) {
        Some(Inapplicable::Exhausted)
    } else if coupon.max_uses_per_user.is_some_and(|max| user_uses >= max) {
        Some(Inapplicable::UserLimitReached)
    } else if subtotal_cents < coupon.min_subtotal_cents {
        Some(Inapplicable::BelowMinimum {
            min_subtotal_cents: coupon.min_subtotal_cents,
        })
    } else {
        None
    }
}

/// The discount on `subtotal_cents`: a percentage rounded half up, or a fixed amount capped at
/// the subtotal, so the total never goes below zero.
pub fn discount_cents(kind: CouponKind, value: i64, subtotal_cents: i64) -> i64 {
    let subtotal = subtotal_cents.max(0);
    match kind {
        CouponKind::Percent => {
            let percent = value.clamp(0, 100);
            // i128: a large subtotal times 100 must not overflow.
            let discount = (i128::from(subtotal) * i128::from(percent) + 50) / 100;
            i64::try_from(discount).unwrap_or(subtotal).min(subtotal)
        }
        CouponKind::Fixed => value.clamp(0, subtotal),
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::{cart::MAX_LINE_QUANTITY, catalog::products::MAX_PRICE_CENTS};

    fn kind() -> impl Strategy<Value = CouponKind> {
        prop_oneof![Just(CouponKind::Percent), Just(CouponKind::Fixed)]
    }

    /// A subtotal a real cart can reach: up to 50 lines at the largest price and quantity.
    fn reachable_subtotal() -> impl Strategy<Value = i64> {
        0..=MAX_PRICE_CENTS * MAX_LINE_QUANTITY * 50
    }

    proptest! {
        #[test]
        fn a_discount_is_never_negative_nor_above_the_subtotal(
            kind in kind(),
            value in any::<i64>(),
            subtotal in any::<i64>(),
        ) {
            let discount = discount_cents(kind, value, subtotal);
            prop_assert!(discount >= 0);
            prop_assert!(discount <= subtotal.max(0));
        }

        #[test]
        fn a_percent_discount_is_the_rounded_share_and_grows_with_both_inputs(
            value in 1i64..=100,
            subtotal in reachable_subtotal(),
            more in 0i64..1_000_000,
        ) {
            let discount = discount_cents(CouponKind::Percent, value, subtotal);
            let exact = i128::from(subtotal) * i128::from(value);
            // Rounded half up: within half a centavo of the exact share.
            prop_assert!((i128::from(discount) * 100 - exact).abs() <= 50);
            prop_assert!(discount_cents(CouponKind::Percent, value, subtotal + more) >= discount);
            prop_assert!(discount_cents(CouponKind::Percent, (value + 1).min(100), subtotal) >= discount);
            prop_assert_eq!(discount_cents(CouponKind::Percent, 100, subtotal), subtotal);
        }

        #[test]
        fn a_fixed_discount_is_its_value_capped_at_the_subtotal(
            value in 1i64..=i64::MAX,
            subtotal in reachable_subtotal(),
        ) {
            prop_assert_eq!(discount_cents(CouponKind::Fixed, value, subtotal), value.min(subtotal));
        }
    }
}
