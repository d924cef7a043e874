//! Discount coupons: admin CRUD, the rules a cart checks, and use counting for checkout.
//!
//! Limits hold under concurrency. [`redeem`] counts a use inside the checkout transaction with
//! conditional updates: the global counter (`uses < max_uses`) and a per-user counter row
//! (`coupon_user_uses`, `uses < max_uses_per_user`). Row locks serialise concurrent
//! redemptions, and PostgreSQL re-checks the condition on the row a concurrent winner
//! committed, so a limit can never be overshot. [`release`] undoes exactly one redemption.

mod kind;
mod rules;

pub use kind::CouponKind;
pub use rules::{Inapplicable, discount_cents, inapplicable_reason};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{
    Error, Result,
    catalog::products::MAX_PRICE_CENTS,
    error::{FieldErrors, ResultExt},
};

/// The contract's `coupon` (plus `uses`, the redemptions counted so far).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Coupon {
    pub id: Uuid,
    pub code: String,
    pub kind: CouponKind,
    /// Percent (1–100) or centavos off the subtotal.
    pub value: i64,
    pub min_subtotal_cents: i64,
    /// `null`: unlimited.
    pub max_uses: Option<i32>,
    /// `null`: unlimited.
    pub max_uses_per_user: Option<i32>,
    pub uses: i32,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub active: bool,
}

/// The body of `POST /api/coupons` and `PUT /api/coupons/{id}`. Besides each field's own
/// bounds: a `percent` coupon's `value` is at most 100, and `ends_at` is after `starts_at`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "code": "BEMVINDO10", "kind": "percent", "value": 10, "min_subtotal_cents": 5000,
    "max_uses": 1000, "max_uses_per_user": 1, "starts_at": "2026-01-01T00:00:00Z",
    "ends_at": "2026-12-31T23:59:59Z", "active": true
}))]
pub struct CouponInput {
    /// 2–40 letters, digits, `_` or `-`; stored upper-case, unique case-insensitively.
    #[schema(pattern = r"^[A-Za-z0-9_-]{2,40}$")]
    pub code: String,
    #[schema(value_type = CouponKind)]
    pub kind: String,
    /// Percent off (1–100) or centavos off the subtotal.
    #[schema(minimum = 1, maximum = 100_000_000_000_i64)]
    pub value: i64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100_000_000_000_i64)]
    pub min_subtotal_cents: i64,
    /// `null`: unlimited.
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub max_uses: Option<i64>,
    /// `null`: unlimited.
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub max_uses_per_user: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

struct ValidCoupon {
    code: String,
    kind: CouponKind,
    value: i64,
    min_subtotal_cents: i64,
    max_uses: Option<i32>,
    max_uses_per_user: Option<i32>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    active: bool,
}

/// Upper-cases a code and checks its shape.
pub fn normalize_code(code: &str) -> Option<String> {
    let code = code.trim();
    ((2..=40).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then(|| code.to_ascii_uppercase())
}

fn positive_limit(errors: &mut FieldErrors, field: &str, value: Option<i64>) -> Option<i32> {
    let value = value?;
    match i32::try_from(value) {
        Ok(v) if v >= 1 => Some(v),
        _ => {
            errors.add(
                field,
                "must be between 1 and 2147483647, or null for no limit",
            );
            None
        }
    }
}

impl CouponInput {
    fn validate(self) -> Result<ValidCoupon> {
        let mut errors = FieldErrors::new();
        let code = normalize_code(&self.code);
        if code.is_none() {
            errors.add("code", "must be 2 to 40 letters, digits, '_' or '-'");
        }
        let kind = CouponKind::parse(&self.kind);
        match kind {
            None => errors.add("kind", "must be \"percent\" or \"fixed\""),
            Some(CouponKind::Percent) if !(1..=100).contains(&self.value) => errors.add(
                "value",
                "a percent coupon's value must be between 1 and 100",
            ),
            Some(CouponKind::Fixed) if !(1..=MAX_PRICE_CENTS).contains(&self.value) => errors.add(
                "value",
                "a fixed coupon's value must be a positive amount of centavos",
            ),
            Some(_) => {}
        }
        if !(0..=MAX_PRICE_CENTS).contains(&self.min_subtotal_cents) {
            errors.add("min_subtotal_cents", "must not be negative");
        }
        let max_uses = positive_limit(&mut errors, "max_uses", self.max_uses);
        let max_uses_per_user =
            positive_limit(&mut errors, "max_uses_per_user", self.max_uses_per_user);
        if let (Some(starts), Some(ends)) = (self.starts_at, self.ends_at)
            && ends <= starts
        {
            errors.add("ends_at", "must be after starts_at");
        }
        errors.into_result()?;
        let (Some(code), Some(kind)) = (code, kind) else {
            return Err(Error::invalid("coupon", "invalid values"));
        };
        Ok(ValidCoupon {
            code,
            kind,
            value: self.value,
            min_subtotal_cents: self.min_subtotal_cents,
            max_uses,
            max_uses_per_user,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            active: self.active,
        })
    }
}

fn write_errors<T>(result: Result<T, sqlx::Error>) -> Result<T> {
    result
        .on_constraint("coupons_code_key", || {
            Error::conflict("a coupon with this code already exists")
        })
        .on_constraint("coupons_uses_within_limit", || {
            Error::invalid("max_uses", "is below the number of uses so far")
        })
}

pub async fn create(conn: &mut PgConnection, input: CouponInput) -> Result<Coupon> {
    let c = input.validate()?;
    write_errors(
        sqlx::query_as!(
            Coupon,
            r#"INSERT INTO coupons (id, code, kind, value, min_subtotal_cents, max_uses,
                   max_uses_per_user, starts_at, ends_at, active)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               RETURNING id, code, kind AS "kind: CouponKind", value, min_subtotal_cents,
                   max_uses, max_uses_per_user, uses, starts_at, ends_at, active"#,
            Uuid::now_v7(),
            c.code,
            c.kind as CouponKind,
            c.value,
            c.min_subtotal_cents,
            c.max_uses,
            c.max_uses_per_user,
            c.starts_at,
            c.ends_at,
            c.active,
        )
        .fetch_one(conn)
        .await,
    )
}

/// Replaces a live coupon's settings; its use count stays.
pub async fn update(conn: &mut PgConnection, id: Uuid, input: CouponInput) -> Result<Coupon> {
    let c = input.validate()?;
    write_errors(
        sqlx::query_as!(
            Coupon,
            r#"UPDATE coupons SET code = $2, kind = $3, value = $4, min_subtotal_cents = $5,
                   max_uses = $6, max_uses_per_user = $7, starts_at = $8, ends_at = $9,
                   active = $10, updated_at = now()
               WHERE id = $1 AND deleted_at IS NULL
               RETURNING id, code, kind AS "kind: CouponKind", value, min_subtotal_cents,
                   max_uses, max_uses_per_user, uses, starts_at, ends_at, active"#,
            id,
            c.code,
            c.kind as CouponKind,
            c.value,
            c.min_subtotal_cents,
            c.max_uses,
            c.max_uses_per_user,
            c.starts_at,
            c.ends_at,
            c.active,
        )
        .fetch_optional(conn)
        .await,
    )?
    .ok_or(Error::NotFound)
}

/// Soft-deletes a coupon: its code becomes free, redemptions already counted stay (and can
/// still be released). Carts holding it drop it through `cart::detach_coupon`.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let deleted = sqlx::query!(
        "UPDATE coupons SET deleted_at = now(), active = false, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .execute(conn)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Coupon> {
    find(conn, id).await?.ok_or(Error::NotFound)
}

/// A live coupon by id, `None` when there is none (or it was deleted).
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Coupon>> {
    Ok(sqlx::query_as!(
        Coupon,
        r#"SELECT id, code, kind AS "kind: CouponKind", value, min_subtotal_cents, max_uses,
               max_uses_per_user, uses, starts_at, ends_at, active
           FROM coupons WHERE id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// A live coupon by code, case-insensitively.
pub async fn find_by_code(conn: &mut PgConnection, code: &str) -> Result<Option<Coupon>> {
    Ok(sqlx::query_as!(
        Coupon,
        r#"SELECT id, code, kind AS "kind: CouponKind", value, min_subtotal_cents, max_uses,
               max_uses_per_user, uses, starts_at, ends_at, active
           FROM coupons WHERE lower(code) = lower($1) AND deleted_at IS NULL"#,
        code.trim()
    )
    .fetch_optional(conn)
    .await?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponPage {
    pub items: Vec<Coupon>,
    pub total: i64,
}

/// Live coupons, newest first.
pub async fn list(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<CouponPage> {
    let items = sqlx::query_as!(
        Coupon,
        r#"SELECT id, code, kind AS "kind: CouponKind", value, min_subtotal_cents, max_uses,
               max_uses_per_user, uses, starts_at, ends_at, active
           FROM coupons WHERE deleted_at IS NULL
           ORDER BY created_at DESC, id DESC
           LIMIT $1 OFFSET $2"#,
        limit,
        offset
    )
    .fetch_all(&mut *conn)
    .await?;
    let total =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM coupons WHERE deleted_at IS NULL"#)
            .fetch_one(&mut *conn)
            .await?;
    Ok(CouponPage { items, total })
}

/// How many times `user_id` has redeemed the coupon (releases subtracted).
pub async fn uses_by_user(conn: &mut PgConnection, coupon_id: Uuid, user_id: Uuid) -> Result<i32> {
    Ok(sqlx::query_scalar!(
        "SELECT uses FROM coupon_user_uses WHERE coupon_id = $1 AND user_id = $2",
        coupon_id,
        user_id
    )
    .fetch_optional(conn)
    .await?
    .unwrap_or(0))
}

/// Why `coupon` cannot be used by `user_id` on a cart of `subtotal_cents` right now, or `None`
/// when it can.
pub async fn check(
    conn: &mut PgConnection,
    coupon: &Coupon,
    user_id: Uuid,
    subtotal_cents: i64,
) -> Result<Option<Inapplicable>> {
    let user_uses = uses_by_user(conn, coupon.id, user_id).await?;
    Ok(inapplicable_reason(
        coupon,
        Utc::now(),
        user_uses,
        subtotal_cents,
    ))
}

/// Counts one use of the coupon by `user_id` for `order_id`, inside the caller's (checkout)
/// transaction, so the count commits or rolls back with the order.
///
/// Fails with `Invalid` (field `coupon`) when the coupon is unknown, inactive, outside its
/// window, used up globally or by this user; with `Conflict` when the order already redeemed
/// a coupon. On failure nothing is counted (the work runs in a savepoint). The minimum
/// subtotal is the caller's to check (see [`check`]); it knows the order's subtotal.
pub async fn redeem(
    conn: &mut PgConnection,
    coupon_id: Uuid,
    user_id: Uuid,
    order_id: Uuid,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    // The global limit: a conditional increment. Concurrent redeemers queue on the row lock
    // and re-evaluate the WHERE clause against the winner's committed row.
    let per_user_limit = sqlx::query_scalar!(
        "UPDATE coupons SET uses = uses + 1
         WHERE id = $1 AND deleted_at IS NULL AND active
           AND (starts_at IS NULL OR starts_at <= now())
           AND (ends_at IS NULL OR ends_at > now())
           AND (max_uses IS NULL OR uses < max_uses)
         RETURNING max_uses_per_user",
        coupon_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(per_user_limit) = per_user_limit else {
        let reason = match get(&mut tx, coupon_id).await {
            Ok(coupon) => inapplicable_reason(&coupon, Utc::now(), 0, i64::MAX)
                .unwrap_or(Inapplicable::Exhausted),
            Err(Error::NotFound) => Inapplicable::Unknown,
            Err(other) => return Err(other),
        };
        return Err(reason.into_error("coupon"));
    };
    // The per-user limit: the first use inserts the counter row, later ones increment it only
    // while under the limit (ON CONFLICT locks the row, so a user's concurrent checkouts queue).
    let counted = sqlx::query_scalar!(
        "INSERT INTO coupon_user_uses (coupon_id, user_id, uses) VALUES ($1, $2, 1)
         ON CONFLICT (coupon_id, user_id) DO UPDATE SET uses = coupon_user_uses.uses + 1
         WHERE $3::integer IS NULL OR coupon_user_uses.uses < $3
         RETURNING uses",
        coupon_id,
        user_id,
        per_user_limit,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if counted.is_none() {
        return Err(Inapplicable::UserLimitReached.into_error("coupon"));
    }
    let recorded = sqlx::query!(
        "INSERT INTO coupon_redemptions (order_id, coupon_id, user_id) VALUES ($1, $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
        order_id,
        coupon_id,
        user_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if recorded == 0 {
        return Err(Error::conflict("this order already used a coupon"));
    }
    tx.commit().await?;
    Ok(())
}

/// Gives back the use [`redeem`] counted for `order_id` (the order was cancelled or expired).
/// Exactly once: later calls, concurrent ones included, find it released and return `false`;
/// so does an order that used no coupon.
pub async fn release(conn: &mut PgConnection, order_id: Uuid) -> Result<bool> {
    let mut tx = conn.begin().await?;
    let released = sqlx::query!(
        "UPDATE coupon_redemptions SET released_at = now()
         WHERE order_id = $1 AND released_at IS NULL
         RETURNING coupon_id, user_id",
        order_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(released) = released else {
        return Ok(false);
    };
    sqlx::query!(
        "UPDATE coupons SET uses = uses - 1 WHERE id = $1 AND uses > 0",
        released.coupon_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE coupon_user_uses SET uses = uses - 1
         WHERE coupon_id = $1 AND user_id = $2 AND uses > 0",
        released.coupon_id,
        released.user_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests;
