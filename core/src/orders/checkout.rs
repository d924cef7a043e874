//! `POST /api/orders`: turning the caller's cart into an order.
//!
//! The shipping quote is an HTTP call, so it happens before the transaction (no locks held
//! while a carrier answers). The transaction then locks the cart and its products (product
//! id order, so concurrent checkouts cannot deadlock), takes the stock with conditional
//! updates, checks and counts the coupon, writes the order with its snapshots, empties the
//! cart and enqueues the follow-up jobs. Any failure rolls all of it back.
//!
//! Each unpaid order holds stock until it expires, so a buyer may hold only so many
//! (`MAX_UNPAID_ORDERS`). The order's insert counts them itself (no extra round trip), after
//! the cart's lock is taken: two checkouts of one buyer queue on that lock, so the second
//! counts the first's order and the cap cannot be passed twice.
//!
//! Should the cart change between the quote and the lock (another tab added an item), the
//! package no longer matches the quote: the transaction is abandoned and the quote redone.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    create::{self, AppliedCoupon, ChosenShipping, NewOrder, NewOrderItem},
    model::{Order, ShippingAddress},
    notify,
};
use crate::{
    Error, Result,
    cart::{LockedCart, lock_for_checkout},
    catalog::stock,
    coupons,
    jobs::{self, expire_order::ExpireOrder},
    mail::templates::Templates,
    shipping::{
        Package, PackageLine, QuoteRequest, ShippingOption, ShippingProvider, package_from_lines,
    },
};

/// The body of `POST /api/orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckoutRequest {
    /// One of the caller's addresses.
    pub address_id: Uuid,
    /// The service name of a shipping option, e.g. `PAC` (as `/api/shipping/calculate` lists).
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub shipping_service: String,
}

/// What checkout needs besides the database.
pub struct CheckoutContext<'a> {
    pub shipping: &'a dyn ShippingProvider,
    /// The CEP parcels leave from.
    pub sender_cep: &'a str,
    /// How long the order waits for its payment.
    pub payment_ttl: Duration,
    /// Renders the "order placed" e-mail.
    pub templates: &'a Templates,
    /// Unpaid orders the buyer may hold at once, this one included (`MAX_UNPAID_ORDERS`);
    /// 0: no cap.
    pub max_unpaid_orders: u32,
}

/// Quotes redone because the cart changed under us, before giving up with a 409.
const ATTEMPTS: usize = 3;

struct Buyer {
    cpf: String,
    /// For the "order placed" e-mail.
    contact: notify::Recipient,
}

/// Places the caller's cart as an order. See the module docs for the steps; errors:
/// 422 for an empty cart, a missing CPF, an unknown address or shipping service, or a coupon
/// that no longer applies; 409 for short stock (naming the product) or for a buyer who
/// already holds `max_unpaid_orders` unpaid orders; 502/503 when the shipping provider fails.
/// Nothing is written on any error.
pub async fn place_order(
    conn: &mut PgConnection,
    ctx: &CheckoutContext<'_>,
    user_id: Uuid,
    request: &CheckoutRequest,
) -> Result<Order> {
    let service = request.shipping_service.trim();
    if service.is_empty() {
        return Err(Error::invalid("shipping_service", "must not be empty"));
    }
    let (buyer, address, mut package) =
        buyer_address_and_package(conn, user_id, request.address_id).await?;

    for _ in 0..ATTEMPTS {
        let option = quote(ctx, &address.cep, &package, service).await?;
        let mut tx = conn.begin().await?;
        let cart = lock_for_checkout(&mut tx, user_id).await?;
        if cart.is_empty() {
            return Err(empty_cart());
        }
        let locked_package = package_of(&cart);
        if locked_package != package {
            // The cart changed since the quote: let go of the locks and quote again.
            tx.rollback().await?;
            package = locked_package;
            continue;
        }
        let order = write_order(&mut tx, ctx, &cart, &buyer, &address, option).await?;
        tx.commit().await?;
        crate::business_events::order_placed(&order, user_id);
        return Ok(order);
    }
    Err(Error::try_again(
        "the cart kept changing during checkout; please try again",
    ))
}

/// Everything inside the checkout transaction, once the cart is locked and priced.
async fn write_order(
    tx: &mut PgConnection,
    ctx: &CheckoutContext<'_>,
    cart: &LockedCart,
    buyer: &Buyer,
    address: &ShippingAddress,
    option: ShippingOption,
) -> Result<Order> {
    // Stock first, product by product in id order (the order the rows were locked in).
    for line in &cart.lines {
        if !stock::take(tx, line.product_id, line.quantity).await? {
            return Err(Error::conflict(format!(
                "not enough stock for \"{}\" ({} requested, {} available)",
                line.name,
                line.quantity,
                line.stock.max(0)
            )));
        }
    }

    let subtotal = cart.subtotal_cents();
    let coupon = match &cart.coupon {
        Some(coupon) => {
            if let Some(reason) = coupons::check(tx, coupon, cart.user_id, subtotal).await? {
                return Err(reason.into_error("coupon"));
            }
            Some(AppliedCoupon {
                id: coupon.id,
                code: coupon.code.clone(),
                discount_cents: coupons::discount_cents(coupon.kind, coupon.value, subtotal),
            })
        }
        None => None,
    };

    let payment_ttl = chrono::Duration::from_std(ctx.payment_ttl)
        .map_err(|e| anyhow::anyhow!("payment TTL out of range: {e}"))?;
    let new = NewOrder {
        user_id: cart.user_id,
        items: cart
            .lines
            .iter()
            .map(|line| NewOrderItem {
                product_id: line.product_id,
                sku: line.sku.clone(),
                name: line.name.clone(),
                unit_price_cents: line.unit_price_cents,
                quantity: line.quantity,
                ncm: Some(line.ncm.clone()),
                weight_grams: Some(line.weight_grams),
            })
            .collect(),
        coupon,
        shipping: ChosenShipping {
            carrier: option.carrier,
            service: option.service,
            price_cents: option.price_cents,
            days: option.days,
            address: address.clone(),
        },
        recipient_cpf: buyer.cpf.clone(),
        expires_at: chrono::Utc::now() + payment_ttl,
    };
    let cap = (ctx.max_unpaid_orders > 0).then_some(ctx.max_unpaid_orders);
    let created = create::insert_within_unpaid_cap(tx, &new, cap).await?;
    if let Some(coupon) = &new.coupon {
        // Counts the use against the global and per-user limits; over a limit → 422.
        coupons::redeem(tx, coupon.id, cart.user_id, created.id).await?;
    }
    crate::cart::clear(tx, cart.user_id).await?;

    let order = created.order;
    let placed_email = notify::order_placed(ctx.templates, &order, &buyer.contact)?;
    let expiry = ExpireOrder {
        order_id: created.id,
    };
    jobs::enqueue_all(
        tx,
        &[
            jobs::encode(&placed_email, None)?,
            jobs::encode(&expiry, Some(created.expires_at))?,
        ],
    )
    .await?;
    Ok(order)
}

fn empty_cart() -> Error {
    Error::invalid("cart", "the cart is empty")
}

/// The buyer (with the CPF the invoice needs), the chosen address as the order's snapshot and
/// the cart's package as it is now (read without locks, for the quote), in one query. A
/// missing CPF is a 422 on `cpf`; someone else's (or a missing) address is a 422 on
/// `address_id`, the same answer either way; then an empty cart is a 422 on `cart`.
async fn buyer_address_and_package(
    conn: &mut PgConnection,
    user_id: Uuid,
    address_id: Uuid,
) -> Result<(Buyer, ShippingAddress, Package)> {
    // One row per live cart line (or one row with no line), each carrying the buyer and the
    // address: a cart has a handful of lines, so the repetition costs less than a round trip.
    let rows = sqlx::query!(
        r#"SELECT u.cpf, u.name, u.email,
                  a.label AS "label?", a.recipient AS "recipient?", a.cep AS "cep?",
                  a.street AS "street?", a.number AS "number?", a.complement AS "complement?",
                  a.district AS "district?", a.city AS "city?", a.state AS "state?",
                  line.weight_grams AS "weight_grams?", line.height_cm AS "height_cm?",
                  line.width_cm AS "width_cm?", line.length_cm AS "length_cm?",
                  line.price_cents AS "price_cents?", line.quantity AS "quantity?"
           FROM users u
           LEFT JOIN addresses a ON a.id = $2 AND a.user_id = u.id
           LEFT JOIN LATERAL (
               SELECT p.id, p.weight_grams, p.height_cm, p.width_cm, p.length_cm, p.price_cents,
                      ci.quantity
               FROM cart_items ci JOIN products p ON p.id = ci.product_id
               WHERE ci.user_id = u.id AND p.deleted_at IS NULL
           ) line ON true
           WHERE u.id = $1 AND u.deleted_at IS NULL
           ORDER BY line.id"#,
        user_id,
        address_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = rows.first() else {
        return Err(Error::NotFound);
    };
    let Some(cpf) = first.cpf.clone() else {
        return Err(Error::invalid(
            "cpf",
            "add your CPF to your profile before placing an order (it goes on the invoice)",
        ));
    };
    let no_address = || Error::invalid("address_id", "no such address in your address book");
    let address = ShippingAddress {
        label: first.label.clone(),
        recipient: first.recipient.clone().ok_or_else(no_address)?,
        cep: first.cep.clone().ok_or_else(no_address)?,
        street: first.street.clone().ok_or_else(no_address)?,
        number: first.number.clone().ok_or_else(no_address)?,
        complement: first.complement.clone(),
        district: first.district.clone().ok_or_else(no_address)?,
        city: first.city.clone().ok_or_else(no_address)?,
        state: first.state.clone().ok_or_else(no_address)?,
    };
    let buyer = Buyer {
        cpf,
        contact: notify::Recipient {
            name: first.name.clone(),
            email: first.email.clone(),
        },
    };
    // Rows without a line (an empty cart) carry nulls in the line's columns.
    let lines: Vec<PackageLine> = rows
        .iter()
        .filter_map(|r| {
            Some(PackageLine {
                weight_grams: i64::from(r.weight_grams?),
                height_cm: r.height_cm?,
                width_cm: r.width_cm?,
                length_cm: r.length_cm?,
                quantity: i64::from(r.quantity?),
                unit_price_cents: r.price_cents?,
            })
        })
        .collect();
    if lines.is_empty() {
        return Err(empty_cart());
    }
    Ok((buyer, address, package_from_lines(&lines)))
}

fn package_of(cart: &LockedCart) -> Package {
    let lines: Vec<PackageLine> = cart
        .lines
        .iter()
        .map(|l| PackageLine {
            weight_grams: i64::from(l.weight_grams),
            height_cm: l.height_cm,
            width_cm: l.width_cm,
            length_cm: l.length_cm,
            quantity: i64::from(l.quantity),
            unit_price_cents: l.unit_price_cents,
        })
        .collect();
    package_from_lines(&lines)
}

/// Prices the chosen service for this package and destination with the provider.
async fn quote(
    ctx: &CheckoutContext<'_>,
    destination_cep: &str,
    package: &Package,
    service: &str,
) -> Result<ShippingOption> {
    let request = QuoteRequest {
        origin_cep: ctx.sender_cep.to_owned(),
        destination_cep: destination_cep.to_owned(),
        package: package.clone(),
    };
    let options = ctx.shipping.quote(&request).await?;
    if let Some(option) = options
        .iter()
        .find(|o| o.service.eq_ignore_ascii_case(service))
    {
        return Ok(option.clone());
    }
    let offered: Vec<&str> = options.iter().map(|o| o.service.as_str()).collect();
    Err(Error::invalid(
        "shipping_service",
        if offered.is_empty() {
            "no shipping service delivers to this address".to_owned()
        } else {
            format!(
                "not offered for this address; choose one of: {}",
                offered.join(", ")
            )
        },
    ))
}

#[cfg(test)]
mod tests;
