//! The default shipping provider: a fixed rate table, no network.
//!
//! The price depends on how far the parcel travels and on its billed weight:
//! - distance: the first digit of a CEP names a postal region (0 São Paulo capital and
//!   metro, 1 São Paulo interior, 2 RJ/ES, 3 MG, 4 BA/SE, 5 PE/AL/PB/RN,
//!   6 CE/PI/MA/PA/AP/AM/RR/AC, 7 DF/GO/TO/MT/MS/RO, 8 PR/SC, 9 RS). Origin and
//!   destination fall into one of four distance classes: the same region, the same
//!   macro-region (Southeast, South, Centre-West, Northeast, North), a neighbouring
//!   macro-region, or a distant one.
//! - billed weight: the greater of the real weight and the cubic weight
//!   (length × width × height / 6000 kg, i.e. cm³ / 6 in grams), in bands up to 30 kg and
//!   per started kilogram beyond.
//!
//! The declared value does not change the price (no insurance surcharge). Both PAC and
//! SEDEX are always offered; SEDEX is faster and dearer in every cell.

use async_trait::async_trait;

use super::{Package, QuoteRequest, ShippingOption, ShippingProvider, check_ceps};
use crate::http_client::ProviderError;

const CARRIER: &str = "Correios";

/// Upper bounds (inclusive, grams) of the weight bands priced in the tables below.
const BAND_LIMITS_GRAMS: [i64; 7] = [300, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000];

/// One service's prices: `prices[distance class][weight band]` in centavos, the surcharge
/// per started kilogram beyond the last band, and delivery days per distance class.
struct ServiceTable {
    name: &'static str,
    prices: [[i64; 7]; 4],
    extra_per_kg: [i64; 4],
    days: [i32; 4],
}

const PAC: ServiceTable = ServiceTable {
    name: "PAC",
    prices: [
        [1_590, 1_790, 2_090, 2_790, 3_990, 6_290, 8_490],
        [1_990, 2_290, 2_690, 3_690, 5_490, 8_790, 11_990],
        [2_490, 2_890, 3_490, 4_990, 7_690, 12_490, 16_990],
        [2_990, 3_590, 4_390, 6_490, 9_990, 16_490, 22_490],
    ],
    extra_per_kg: [290, 390, 490, 590],
    days: [3, 5, 8, 12],
};

const SEDEX: ServiceTable = ServiceTable {
    name: "SEDEX",
    prices: [
        [2_190, 2_490, 2_990, 3_990, 5_790, 9_290, 12_490],
        [2_990, 3_490, 4_190, 5_690, 8_490, 13_490, 18_490],
        [3_890, 4_590, 5_590, 7_990, 12_290, 19_990, 27_490],
        [4_990, 5_990, 7_390, 10_990, 16_990, 27_990, 38_490],
    ],
    extra_per_kg: [490, 690, 890, 1_090],
    days: [1, 2, 3, 5],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MacroRegion {
    Southeast,
    South,
    CentreWest,
    Northeast,
    North,
}

/// The macro-region of a CEP region digit (see the module docs).
fn macro_region(region: u8) -> MacroRegion {
    match region {
        0..=3 => MacroRegion::Southeast,
        4 | 5 => MacroRegion::Northeast,
        6 => MacroRegion::North,
        7 => MacroRegion::CentreWest,
        _ => MacroRegion::South,
    }
}

/// 0 same region, 1 same macro-region, 2 neighbouring macro-regions, 3 distant ones.
fn distance_class(origin_region: u8, destination_region: u8) -> usize {
    use MacroRegion::*;
    if origin_region == destination_region {
        return 0;
    }
    let (a, b) = (
        macro_region(origin_region),
        macro_region(destination_region),
    );
    if a == b {
        return 1;
    }
    match (a, b) {
        (Southeast, North) | (North, Southeast) => 3,
        (South, Northeast) | (Northeast, South) => 3,
        (South, North) | (North, South) => 3,
        _ => 2,
    }
}

fn region_of(cep: &str) -> u8 {
    cep.bytes().next().map_or(0, |b| b.saturating_sub(b'0'))
}

/// The greater of the real weight and the cubic weight (cm³ / 6 grams, rounded up).
pub fn billed_weight_grams(package: &Package) -> i64 {
    let volume_cm3 = i64::from(package.length_cm.max(0))
        .saturating_mul(i64::from(package.width_cm.max(0)))
        .saturating_mul(i64::from(package.height_cm.max(0)));
    let cubic_grams = volume_cm3.saturating_add(5) / 6;
    package.weight_grams.max(cubic_grams).max(0)
}

fn price_cents(service: &ServiceTable, class: usize, billed_grams: i64) -> i64 {
    match BAND_LIMITS_GRAMS
        .iter()
        .position(|&limit| billed_grams <= limit)
    {
        Some(band) => service.prices[class][band],
        None => {
            let over = billed_grams - BAND_LIMITS_GRAMS[BAND_LIMITS_GRAMS.len() - 1];
            let extra_kg = (over + 999) / 1_000;
            service.prices[class][BAND_LIMITS_GRAMS.len() - 1]
                .saturating_add(service.extra_per_kg[class].saturating_mul(extra_kg))
        }
    }
}

/// The `table` provider. Stateless and deterministic: the same request always gets the
/// same options.
#[derive(Debug, Clone, Default)]
pub struct TableProvider;

impl TableProvider {
    pub fn new() -> Self {
        Self
    }

    /// The options for `request`, without the async wrapper.
    pub fn options(&self, request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
        check_ceps(request)?;
        let class = distance_class(
            region_of(&request.origin_cep),
            region_of(&request.destination_cep),
        );
        let billed = billed_weight_grams(&request.package);
        Ok([&PAC, &SEDEX]
            .into_iter()
            .map(|service| ShippingOption {
                carrier: CARRIER.to_owned(),
                service: service.name.to_owned(),
                price_cents: price_cents(service, class, billed),
                days: service.days[class],
            })
            .collect())
    }
}

#[async_trait]
impl ShippingProvider for TableProvider {
    async fn quote(&self, request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
        self.options(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(weight_grams: i64, (l, w, h): (i32, i32, i32)) -> Package {
        Package {
            weight_grams,
            height_cm: h,
            width_cm: w,
            length_cm: l,
            declared_value_cents: 10_000,
        }
    }

    fn quote(origin: &str, destination: &str, package: Package) -> Vec<ShippingOption> {
        TableProvider::new()
            .options(&QuoteRequest {
                origin_cep: origin.into(),
                destination_cep: destination.into(),
                package,
            })
            .unwrap()
    }

    fn by_service<'a>(options: &'a [ShippingOption], service: &str) -> &'a ShippingOption {
        options.iter().find(|o| o.service == service).unwrap()
    }

    const SMALL: (i32, i32, i32) = (16, 11, 2);

    #[test]
    fn cep_regions_fall_into_their_macro_regions() {
        assert_eq!(macro_region(0), MacroRegion::Southeast);
        assert_eq!(macro_region(1), MacroRegion::Southeast);
        assert_eq!(macro_region(2), MacroRegion::Southeast);
        assert_eq!(macro_region(3), MacroRegion::Southeast);
        assert_eq!(macro_region(4), MacroRegion::Northeast);
        assert_eq!(macro_region(5), MacroRegion::Northeast);
        assert_eq!(macro_region(6), MacroRegion::North);
        assert_eq!(macro_region(7), MacroRegion::CentreWest);
        assert_eq!(macro_region(8), MacroRegion::South);
        assert_eq!(macro_region(9), MacroRegion::South);
    }

    #[test]
    fn distance_grows_from_same_region_to_distant_macro_regions() {
        // São Paulo capital to itself, to its interior, to Curitiba, to Manaus.
        assert_eq!(distance_class(0, 0), 0);
        assert_eq!(distance_class(0, 1), 1);
        assert_eq!(distance_class(0, 8), 2);
        assert_eq!(distance_class(0, 6), 3);
        // Porto Alegre to Salvador is distant; Brasília neighbours everyone.
        assert_eq!(distance_class(9, 4), 3);
        assert_eq!(distance_class(7, 6), 2);
        assert_eq!(distance_class(7, 9), 2);
        // Symmetric.
        for a in 0..=9 {
            for b in 0..=9 {
                assert_eq!(distance_class(a, b), distance_class(b, a));
            }
        }
    }

    #[test]
    fn a_local_small_parcel_gets_the_cheapest_cell() {
        let options = quote("01310100", "04538132", package(250, SMALL));
        assert_eq!(
            options,
            vec![
                ShippingOption {
                    carrier: "Correios".into(),
                    service: "PAC".into(),
                    price_cents: 1_590,
                    days: 3
                },
                ShippingOption {
                    carrier: "Correios".into(),
                    service: "SEDEX".into(),
                    price_cents: 2_190,
                    days: 1
                },
            ]
        );
    }

    #[test]
    fn farther_destinations_cost_more_and_take_longer() {
        let weight = package(800, SMALL);
        let local = quote("01310100", "02011000", weight.clone());
        let interior = quote("01310100", "13010000", weight.clone());
        let south = quote("01310100", "80010000", weight.clone());
        let north = quote("01310100", "69005000", weight);
        for service in ["PAC", "SEDEX"] {
            let prices: Vec<i64> = [&local, &interior, &south, &north]
                .iter()
                .map(|o| by_service(o, service).price_cents)
                .collect();
            let days: Vec<i32> = [&local, &interior, &south, &north]
                .iter()
                .map(|o| by_service(o, service).days)
                .collect();
            assert!(
                prices.windows(2).all(|w| w[0] < w[1]),
                "{service}: {prices:?}"
            );
            assert!(days.windows(2).all(|w| w[0] < w[1]), "{service}: {days:?}");
        }
        assert_eq!(by_service(&north, "PAC").price_cents, 3_590);
        assert_eq!(by_service(&north, "PAC").days, 12);
    }

    #[test]
    fn weight_band_edges_are_inclusive() {
        let pac = |grams| {
            by_service(&quote("20040002", "20040002", package(grams, SMALL)), "PAC").price_cents
        };
        assert_eq!(pac(300), 1_590);
        assert_eq!(pac(301), 1_790);
        assert_eq!(pac(1_000), 1_790);
        assert_eq!(pac(1_001), 2_090);
        assert_eq!(pac(5_000), 2_790);
        assert_eq!(pac(20_000), 6_290);
        assert_eq!(pac(30_000), 8_490);
    }

    #[test]
    fn beyond_thirty_kilos_each_started_kilo_adds_a_surcharge() {
        let pac = |grams| {
            by_service(&quote("90010000", "90020000", package(grams, SMALL)), "PAC").price_cents
        };
        assert_eq!(pac(30_001), 8_490 + 290);
        assert_eq!(pac(31_000), 8_490 + 290);
        assert_eq!(pac(32_500), 8_490 + 3 * 290);
    }

    #[test]
    fn a_light_bulky_box_is_billed_by_cubic_weight() {
        // 40×40×40 cm = 64 000 cm³ → 10 667 g cubic, more than the real 1 kg: the 20 kg band.
        let bulky = package(1_000, (40, 40, 40));
        assert_eq!(billed_weight_grams(&bulky), 10_667);
        let options = quote("30110000", "30140000", bulky);
        assert_eq!(by_service(&options, "PAC").price_cents, 6_290);
        // A dense small parcel is billed by its real weight.
        assert_eq!(billed_weight_grams(&package(2_000, SMALL)), 2_000);
    }

    #[test]
    fn sedex_is_faster_and_dearer_in_every_cell() {
        for class in 0..4 {
            assert!(SEDEX.days[class] < PAC.days[class]);
            assert!(SEDEX.extra_per_kg[class] > PAC.extra_per_kg[class]);
            for band in 0..BAND_LIMITS_GRAMS.len() {
                assert!(SEDEX.prices[class][band] > PAC.prices[class][band]);
                if band > 0 {
                    assert!(PAC.prices[class][band] > PAC.prices[class][band - 1]);
                    assert!(SEDEX.prices[class][band] > SEDEX.prices[class][band - 1]);
                }
                if class > 0 {
                    assert!(PAC.prices[class][band] > PAC.prices[class - 1][band]);
                    assert!(SEDEX.prices[class][band] > SEDEX.prices[class - 1][band]);
                }
            }
        }
    }

    #[test]
    fn the_same_request_always_gets_the_same_quote() {
        let first = quote("88010000", "50010000", package(4_321, (30, 20, 10)));
        let second = quote("88010000", "50010000", package(4_321, (30, 20, 10)));
        assert_eq!(first, second);
    }

    #[tokio::test]
    async fn a_malformed_cep_is_rejected_permanently() {
        let err = TableProvider::new()
            .quote(&QuoteRequest {
                origin_cep: "01310100".into(),
                destination_cep: "0131010".into(),
                package: package(100, SMALL),
            })
            .await
            .unwrap_err();
        assert!(err.is_permanent());
    }
}
