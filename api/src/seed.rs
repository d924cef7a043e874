//! The demo catalog loaded by `cart-api seed` and by the quick start: a category tree, thirty
//! products of a Brazilian coffee shop (accents, real NCMs, weights and sizes for shipping),
//! and two coupons. It loads only into an empty catalog, so running it twice does nothing.

use std::collections::HashMap;

use anyhow::Context;
use cart_core::{
    catalog::{CategoryInput, ProductInput, categories, products},
    coupons::{self, CouponInput},
};
use sqlx::PgPool;
use uuid::Uuid;

/// What a seed run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedOutcome {
    Loaded {
        categories: usize,
        products: usize,
        coupons: usize,
    },
    /// The catalog already had categories or products; nothing was written.
    CatalogNotEmpty,
}

/// (name, parent name, description)
const CATEGORIES: &[(&str, Option<&str>, &str)] = &[
    ("Cafés", None, "Cafés especiais de produtores brasileiros."),
    ("Cafés em Grãos", Some("Cafés"), "Para moer na hora."),
    ("Cafés Moídos", Some("Cafés"), "Prontos para o coador."),
    (
        "Cápsulas",
        Some("Cafés"),
        "Compatíveis com as máquinas mais comuns.",
    ),
    ("Acessórios", None, "Tudo para preparar e servir."),
    ("Canecas e Xícaras", Some("Acessórios"), ""),
    (
        "Métodos de Preparo",
        Some("Acessórios"),
        "Coadores, prensas, moedores e chaleiras.",
    ),
    ("Chás e Infusões", None, "Chás, ervas e erva-mate."),
    ("Doces", None, "Para acompanhar o café."),
    ("Chocolates", Some("Doces"), ""),
];

struct SeedProduct {
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    price_cents: i64,
    stock: i64,
    featured: bool,
    /// grams, then height × width × length in cm
    weight_grams: i64,
    size_cm: (i64, i64, i64),
    ncm: &'static str,
    description: &'static str,
}

#[expect(clippy::too_many_arguments, reason = "one row of the table below")]
const fn p(
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    price_cents: i64,
    stock: i64,
    featured: bool,
    weight_grams: i64,
    size_cm: (i64, i64, i64),
    ncm: &'static str,
    description: &'static str,
) -> SeedProduct {
    SeedProduct {
        sku,
        name,
        category,
        price_cents,
        stock,
        featured,
        weight_grams,
        size_cm,
        ncm,
        description,
    }
}

#[rustfmt::skip]
const PRODUCTS: &[SeedProduct] = &[
    p("CAF-ESP-500", "Café Especial Torrado 500g", "Cafés Moídos", 4590, 120, true, 520, (22, 12, 7), "09012100",
      "Torra média, notas de chocolate e caramelo. Cultivado na Mantiqueira de Minas."),
    p("CAF-GRA-BOU-1K", "Café em Grãos Bourbon Amarelo 1kg", "Cafés em Grãos", 8990, 60, true, 1030, (28, 15, 9), "09012100",
      "Bourbon amarelo de altitude, torra clara, acidez cítrica e corpo sedoso."),
    p("CAF-MOI-TRA-250", "Café Moído Tradicional 250g", "Cafés Moídos", 1890, 300, false, 260, (16, 10, 6), "09012100",
      "O café do dia a dia: torra média-escura, moagem para coador."),
    p("CAF-DES-250", "Café Descafeinado Moído 250g", "Cafés Moídos", 2790, 80, false, 260, (16, 10, 6), "09012200",
      "Descafeinado por processo natural com água, sem perder o sabor."),
    p("CAF-ORG-CER-500", "Café Orgânico do Cerrado Mineiro 500g", "Cafés em Grãos", 5490, 45, false, 520, (22, 12, 7), "09012100",
      "Certificado orgânico, notas de frutas amarelas e mel."),
    p("CAF-GOU-SUL-250", "Café Gourmet Sul de Minas 250g", "Cafés em Grãos", 3290, 90, false, 260, (16, 10, 6), "09012100",
      "Grãos selecionados à mão, torra média, final adocicado."),
    p("CAF-CAP-INT-10", "Cápsulas Espresso Intenso (10 un.)", "Cápsulas", 2490, 200, true, 80, (5, 12, 11), "09012100",
      "Intensidade 10, crema densa e persistente."),
    p("CAF-CAP-LUN-10", "Cápsulas Lungo Suave (10 un.)", "Cápsulas", 2490, 150, false, 80, (5, 12, 11), "09012100",
      "Para xícaras maiores: suave, floral e equilibrado."),
    p("ACE-CAN-CER-350", "Caneca de Cerâmica 350ml", "Canecas e Xícaras", 3990, 70, true, 380, (10, 12, 9), "69120000",
      "Cerâmica artesanal esmaltada, vai ao micro-ondas e à lava-louças."),
    p("ACE-CAN-ESM-AZ", "Caneca Esmaltada Azul", "Canecas e Xícaras", 2990, 40, false, 250, (9, 11, 9), "73239900",
      "Ágata azul com borda preta, clássica das cozinhas mineiras."),
    p("ACE-XIC-POR", "Xícara de Porcelana com Pires", "Canecas e Xícaras", 2490, 100, false, 300, (7, 14, 14), "69111010",
      "Porcelana branca, 90 ml, ideal para espresso."),
    p("ACE-XIC-JOG-6", "Jogo de Xícaras de Café (6 peças)", "Canecas e Xícaras", 11990, 25, false, 1500, (12, 30, 22), "69111010",
      "Seis xícaras de 80 ml com pires, em caixa para presente."),
    p("ACE-COA-PANO", "Coador de Pano Tradicional", "Métodos de Preparo", 1590, 150, false, 60, (3, 15, 25), "63079090",
      "Algodão cru com cabo de madeira, tamanho médio."),
    p("ACE-FIL-103", "Filtro de Papel nº 103 (100 un.)", "Métodos de Preparo", 990, 400, false, 180, (4, 14, 16), "48232099",
      "Papel sem branqueamento químico, não passa gosto."),
    p("ACE-PRE-FRA-600", "Prensa Francesa 600ml", "Métodos de Preparo", 12990, 30, true, 700, (22, 16, 10), "70134900",
      "Vidro borossilicato e aço inox, filtro de malha dupla."),
    p("ACE-MOE-MAN", "Moedor de Café Manual", "Métodos de Preparo", 18990, 20, false, 650, (20, 8, 8), "82100010",
      "Mós cônicas de cerâmica com regulagem de moagem."),
    p("ACE-CHA-GAN-1L", "Chaleira Bico de Ganso Inox 1L", "Métodos de Preparo", 21990, 15, false, 800, (18, 28, 16), "73239300",
      "Bico fino para despejo controlado no método V60."),
    p("ACE-BAL-DIG", "Balança Digital de Precisão", "Métodos de Preparo", 9990, 35, false, 420, (4, 16, 20), "84231000",
      "Precisão de 0,1 g com cronômetro integrado."),
    p("ACE-GAR-TER-1L", "Garrafa Térmica 1L", "Acessórios", 8990, 50, false, 900, (30, 12, 12), "96170010",
      "Mantém o café quente por até 12 horas."),
    p("CHA-VER-ORG-50", "Chá Verde Orgânico 50g", "Chás e Infusões", 2290, 80, false, 70, (12, 8, 5), "09021000",
      "Folhas inteiras de chá verde do Vale do Ribeira."),
    p("CHA-PRE-ENG-100", "Chá Preto English Breakfast 100g", "Chás e Infusões", 3490, 60, false, 120, (12, 9, 6), "09023000",
      "Blend encorpado para tomar com leite."),
    p("CHA-CAM-30", "Chá de Camomila (30 sachês)", "Chás e Infusões", 1290, 200, false, 60, (8, 14, 7), "12119090",
      "Flores de camomila secas, calmante natural."),
    p("CHA-MATE-1K", "Erva-Mate para Chimarrão 1kg", "Chás e Infusões", 2590, 100, false, 1020, (25, 14, 8), "09030090",
      "Moagem grossa, verde e fresca, do Rio Grande do Sul."),
    p("DOC-CHO-70-100", "Chocolate 70% Cacau 100g", "Chocolates", 1990, 150, true, 110, (1, 8, 16), "18063210",
      "Cacau fino da Bahia, notas de frutas vermelhas."),
    p("DOC-CHO-AVE-90", "Chocolate ao Leite com Avelã 90g", "Chocolates", 1690, 120, false, 100, (1, 8, 16), "18063210",
      "Chocolate ao leite cremoso com avelãs inteiras."),
    p("DOC-BOM-CUP-12", "Bombom de Cupuaçu (caixa 12 un.)", "Chocolates", 4490, 40, false, 200, (4, 18, 12), "18069000",
      "Recheio de cupuaçu da Amazônia com cobertura de chocolate meio amargo."),
    p("DOC-BIS-NAT-200", "Biscoito Amanteigado de Nata 200g", "Doces", 1490, 90, false, 220, (6, 12, 18), "19053100",
      "Receita de fazenda, derrete na boca."),
    p("DOC-PAO-MEL-6", "Pão de Mel com Doce de Leite (6 un.)", "Doces", 2990, 50, false, 360, (5, 20, 14), "19059090",
      "Massa de mel com especiarias, recheio de doce de leite e cobertura de chocolate."),
    p("DOC-ACU-MAS-1K", "Açúcar Mascavo Orgânico 1kg", "Doces", 1890, 70, false, 1010, (20, 12, 6), "17011400",
      "Açúcar mascavo de cana orgânica, sem refino."),
    p("DOC-DOC-LEI-400", "Doce de Leite Mineiro 400g", "Doces", 2190, 60, false, 480, (10, 9, 9), "19019020",
      "Doce de leite de corte, feito em tacho de cobre."),
];

fn seed_coupons() -> Vec<CouponInput> {
    vec![
        CouponInput {
            code: "BEMVINDO10".into(),
            kind: "percent".into(),
            value: 10,
            min_subtotal_cents: 0,
            max_uses: None,
            max_uses_per_user: Some(1),
            starts_at: None,
            ends_at: None,
            active: true,
        },
        CouponInput {
            code: "FRETE15".into(),
            kind: "fixed".into(),
            value: 1500,
            min_subtotal_cents: 10_000,
            max_uses: Some(1000),
            max_uses_per_user: Some(3),
            starts_at: None,
            ends_at: None,
            active: true,
        },
    ]
}

/// Loads the demo catalog in one transaction when there are no categories and no products
/// (deleted ones included: an old catalog is not replaced).
pub async fn load(pool: &PgPool) -> anyhow::Result<SeedOutcome> {
    let mut tx = pool.begin().await?;
    // Two concurrent seeds: the second waits, then finds the catalog full.
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('cart.seed'))")
        .execute(&mut *tx)
        .await?;
    let occupied = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM products) OR EXISTS (SELECT 1 FROM categories) AS "occupied!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    if occupied {
        return Ok(SeedOutcome::CatalogNotEmpty);
    }

    let mut category_ids: HashMap<&str, Uuid> = HashMap::new();
    for (name, parent, description) in CATEGORIES {
        let parent_id = parent.and_then(|p| category_ids.get(p).copied());
        let category = categories::create(
            &mut tx,
            CategoryInput {
                name: (*name).into(),
                description: (*description).into(),
                parent_id,
            },
        )
        .await
        .with_context(|| format!("category {name}"))?;
        category_ids.insert(name, category.id);
    }

    for item in PRODUCTS {
        let (height_cm, width_cm, length_cm) = item.size_cm;
        products::create(
            &mut tx,
            ProductInput {
                sku: item.sku.into(),
                name: item.name.into(),
                description: item.description.into(),
                price_cents: item.price_cents,
                stock: Some(item.stock),
                category_id: category_ids.get(item.category).copied(),
                featured: item.featured,
                weight_grams: item.weight_grams,
                height_cm,
                width_cm,
                length_cm,
                ncm: item.ncm.into(),
                images: vec![format!(
                    "https://cdn.loja-cart.example/produtos/{}.jpg",
                    item.sku.to_ascii_lowercase()
                )],
            },
        )
        .await
        .with_context(|| format!("product {}", item.sku))?;
    }

    let mut coupons_created = 0;
    for coupon in seed_coupons() {
        // An admin may have created the code already; keep theirs.
        if coupons::find_by_code(&mut tx, &coupon.code)
            .await?
            .is_none()
        {
            coupons::create(&mut tx, coupon).await?;
            coupons_created += 1;
        }
    }
    tx.commit().await?;
    Ok(SeedOutcome::Loaded {
        categories: CATEGORIES.len(),
        products: PRODUCTS.len(),
        coupons: coupons_created,
    })
}

/// `cart-api seed`.
pub async fn run(pool: &PgPool) -> anyhow::Result<()> {
    match load(pool).await? {
        SeedOutcome::Loaded {
            categories,
            products,
            coupons,
        } => println!(
            "demo catalog loaded: {categories} categories, {products} products, {coupons} coupons"
        ),
        SeedOutcome::CatalogNotEmpty => {
            println!("the catalog is not empty; nothing to do")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_product_names_a_seed_category_and_has_a_valid_ncm() {
        let names: Vec<&str> = CATEGORIES.iter().map(|c| c.0).collect();
        for item in PRODUCTS {
            assert!(names.contains(&item.category), "{}", item.sku);
            assert!(
                cart_core::catalog::products::normalize_ncm(item.ncm).is_some(),
                "{}",
                item.sku
            );
        }
        assert_eq!(PRODUCTS.len(), 30);
        // Parents come before their children.
        for (i, (_, parent, _)) in CATEGORIES.iter().enumerate() {
            if let Some(parent) = parent {
                assert!(names[..i].contains(parent));
            }
        }
    }
}
