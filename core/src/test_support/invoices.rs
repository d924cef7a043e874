//! An invoice request for the NF-e providers' tests.

use crate::invoices::{
    InvoiceItem, InvoiceRequest, InvoiceTotals, PaymentMeans, Recipient, RecipientAddress,
};

/// A paid order shipped from SP to MG: two lines, shipping and a discount.
pub(crate) fn sample_request() -> InvoiceRequest {
    InvoiceRequest {
        reference: "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        issued_at: "2026-11-25T15:00:00Z".parse().unwrap(),
        recipient: Recipient {
            name: "Ana Souza".into(),
            cpf: "52998224725".into(),
            email: Some("ana@example.com".into()),
            address: RecipientAddress {
                street: "Rua Sergipe".into(),
                number: "1014".into(),
                complement: Some("7o andar".into()),
                district: "Savassi".into(),
                city: "Belo Horizonte".into(),
                uf: "MG".into(),
                cep: "30130174".into(),
            },
        },
        items: vec![
            InvoiceItem {
                code: "CAFE-500".into(),
                description: "Café especial 500 g".into(),
                ncm: "09012100".into(),
                cfop: 6102,
                quantity: 2,
                unit_price_cents: 2_990,
                total_cents: 5_980,
            },
            InvoiceItem {
                code: "CANECA-01".into(),
                description: "Caneca esmaltada".into(),
                ncm: "69120000".into(),
                cfop: 6102,
                quantity: 1,
                unit_price_cents: 4_500,
                total_cents: 4_500,
            },
        ],
        totals: InvoiceTotals {
            products_cents: 10_480,
            shipping_cents: 1_850,
            discount_cents: 1_000,
            total_cents: 11_330,
        },
        payment: Some(PaymentMeans::Pix),
    }
}
