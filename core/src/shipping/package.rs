//! Turning cart or order lines into the one [`Package`] a quote is asked for.
//!
//! The heuristic, deliberately simple and conservative:
//! - weight: the sum of every unit's weight;
//! - height: every unit stacked on top of the other (sum of unit heights);
//! - width and length: the largest width and the largest length of any unit.
//!
//! Stacking overstates the volume of items with small footprints, which can only raise a
//! cubic-weight price a little; it never understates it, so the store does not undercharge
//! for shipping. Carrier minimums (Correios: 16×11×2 cm) are applied by the provider that
//! needs them, not here, so the table provider sees the real size.

use super::Package;

/// One cart or order line as shipping sees it: per-unit measures and the quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLine {
    pub weight_grams: i64,
    pub height_cm: i32,
    pub width_cm: i32,
    pub length_cm: i32,
    pub quantity: i64,
    /// Per-unit price in centavos; the package's declared value is the sum over units.
    pub unit_price_cents: i64,
}

/// Builds the package for `lines` (see the module docs for the heuristic). Negative
/// measures or quantities count as zero; sums saturate instead of overflowing.
pub fn package_from_lines(lines: &[PackageLine]) -> Package {
    let mut package = Package {
        weight_grams: 0,
        height_cm: 0,
        width_cm: 0,
        length_cm: 0,
        declared_value_cents: 0,
    };
    for line in lines {
        let quantity = line.quantity.max(0);
        if quantity == 0 {
            continue;
        }
        package.weight_grams = package
            .weight_grams
            .saturating_add(line.weight_grams.max(0).saturating_mul(quantity));
        let stacked = i64::from(line.height_cm.max(0)).saturating_mul(quantity);
        package.height_cm =
            i32::try_from(i64::from(package.height_cm).saturating_add(stacked)).unwrap_or(i32::MAX);
        package.width_cm = package.width_cm.max(line.width_cm);
        package.length_cm = package.length_cm.max(line.length_cm);
        package.declared_value_cents = package
            .declared_value_cents
            .saturating_add(line.unit_price_cents.max(0).saturating_mul(quantity));
    }
    package
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(weight: i64, h: i32, w: i32, l: i32, quantity: i64, price: i64) -> PackageLine {
        PackageLine {
            weight_grams: weight,
            height_cm: h,
            width_cm: w,
            length_cm: l,
            quantity,
            unit_price_cents: price,
        }
    }

    #[test]
    fn lines_are_stacked_weights_summed_and_footprint_maximised() {
        let package = package_from_lines(&[
            line(250, 4, 12, 18, 2, 1990),
            line(1200, 10, 20, 15, 1, 8900),
        ]);
        assert_eq!(
            package,
            Package {
                weight_grams: 1700,
                height_cm: 18,
                width_cm: 20,
                length_cm: 18,
                declared_value_cents: 12_880,
            }
        );
    }

    #[test]
    fn no_lines_make_an_empty_package() {
        let package = package_from_lines(&[]);
        assert_eq!(package.weight_grams, 0);
        assert_eq!(package.height_cm, 0);
        assert_eq!(package.declared_value_cents, 0);
    }

    #[test]
    fn zero_and_negative_quantities_are_ignored() {
        let package =
            package_from_lines(&[line(500, 5, 10, 10, 0, 100), line(500, 5, 30, 30, -3, 100)]);
        assert_eq!(package.weight_grams, 0);
        assert_eq!(package.width_cm, 0);
    }

    #[test]
    fn huge_quantities_saturate_instead_of_overflowing() {
        let package = package_from_lines(&[line(i64::MAX, i32::MAX, 1, 1, i64::MAX, i64::MAX)]);
        assert_eq!(package.weight_grams, i64::MAX);
        assert_eq!(package.height_cm, i32::MAX);
        assert_eq!(package.declared_value_cents, i64::MAX);
    }
}
