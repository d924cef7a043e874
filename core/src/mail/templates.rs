//! The store's e-mails, in Portuguese, as text and HTML. One typed render function per kind;
//! each returns an [`EmailMessage`] tagged with the kind's name, ready to be enqueued as a
//! `send_email` job. Templates are files under `templates/`, embedded in the binary.

use std::time::Duration;

use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    config::{self, ConfigError},
    mail::EmailMessage,
    money::format_brl,
};

/// What every e-mail shows of the store: its name and links back to the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    pub store_name: String,
    /// The front end's base URL, without a trailing slash.
    pub frontend_url: String,
}

impl Branding {
    pub fn new(store_name: impl Into<String>, frontend_url: impl Into<String>) -> Self {
        Self {
            store_name: store_name.into(),
            frontend_url: frontend_url.into().trim_end_matches('/').to_owned(),
        }
    }

    /// `STORE_NAME` (default "Loja Cart") and `FRONTEND_URL` (default http://localhost:3000).
    pub fn from_env() -> Result<Self, ConfigError> {
        let frontend_url = config::var_or("FRONTEND_URL", "http://localhost:3000");
        if !(frontend_url.starts_with("http://") || frontend_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "FRONTEND_URL",
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        Ok(Self::new(
            config::var_or("STORE_NAME", "Loja Cart"),
            frontend_url,
        ))
    }
}

/// One line of an order as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub customer_name: String,
    pub order_id: Uuid,
    pub order_number: String,
    pub items: Vec<OrderLine>,
    pub subtotal_cents: i64,
    pub discount_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentConfirmed {
    pub customer_name: String,
    pub order_id: Uuid,
    pub order_number: String,
    pub amount_cents: i64,
    /// The payment method as the API names it: `pix` or `credit_card`.
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub customer_name: String,
    pub order_id: Uuid,
    pub order_number: String,
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceIssued {
    pub customer_name: String,
    pub order_id: Uuid,
    pub order_number: String,
    pub invoice_number: String,
    pub series: String,
    /// The NF-e's 44-digit access key.
    pub access_key: String,
    pub pdf_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    pub name: String,
    /// The single-use token the reset link carries.
    pub token: String,
    pub valid_for: Duration,
}

/// Sent to the old address when an account's e-mail changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChanged {
    pub name: String,
    /// The new address; the message shows it masked (`a***@example.com`).
    pub new_email: String,
}

/// The compiled templates plus the branding they are rendered with. Build it once and share it.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    branding: Branding,
}

const SOURCES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    (
        "order_placed.html",
        include_str!("templates/order_placed.html"),
    ),
    (
        "order_placed.txt",
        include_str!("templates/order_placed.txt"),
    ),
    (
        "payment_confirmed.html",
        include_str!("templates/payment_confirmed.html"),
    ),
    (
        "payment_confirmed.txt",
        include_str!("templates/payment_confirmed.txt"),
    ),
    (
        "order_shipped.html",
        include_str!("templates/order_shipped.html"),
    ),
    (
        "order_shipped.txt",
        include_str!("templates/order_shipped.txt"),
    ),
    (
        "invoice_issued.html",
        include_str!("templates/invoice_issued.html"),
    ),
    (
        "invoice_issued.txt",
        include_str!("templates/invoice_issued.txt"),
    ),
    (
        "password_reset.html",
        include_str!("templates/password_reset.html"),
    ),
    (
        "password_reset.txt",
        include_str!("templates/password_reset.txt"),
    ),
    (
        "email_changed.html",
        include_str!("templates/email_changed.html"),
    ),
    (
        "email_changed.txt",
        include_str!("templates/email_changed.txt"),
    ),
];

impl Templates {
    pub fn new(branding: Branding) -> crate::Result<Self> {
        let mut env = Environment::new();
        // Block tags on their own line leave no blank line behind in the text versions.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("brl", format_brl);
        env.add_filter("url", url_attribute);
        for (name, source) in SOURCES {
            env.add_template(name, source).map_err(template_error)?;
        }
        Ok(Self { env, branding })
    }

    pub fn branding(&self) -> &Branding {
        &self.branding
    }

    pub fn order_placed(&self, to: &str, order: &OrderPlaced) -> crate::Result<EmailMessage> {
        let subject = format!("Recebemos o seu pedido nº {}", order.order_number);
        let ctx = context! {
            customer_name => &order.customer_name,
            order_number => &order.order_number,
            items => &order.items,
            subtotal_cents => order.subtotal_cents,
            discount_cents => order.discount_cents,
            shipping_cents => order.shipping_cents,
            total_cents => order.total_cents,
            order_url => self.order_url(order.order_id),
        };
        self.render("order_placed", to, subject, ctx)
    }

    pub fn payment_confirmed(
        &self,
        to: &str,
        payment: &PaymentConfirmed,
    ) -> crate::Result<EmailMessage> {
        let subject = format!("Pagamento confirmado: pedido nº {}", payment.order_number);
        let ctx = context! {
            customer_name => &payment.customer_name,
            order_number => &payment.order_number,
            amount_cents => payment.amount_cents,
            method_label => method_label(&payment.method),
            order_url => self.order_url(payment.order_id),
        };
        self.render("payment_confirmed", to, subject, ctx)
    }

    pub fn order_shipped(&self, to: &str, shipment: &OrderShipped) -> crate::Result<EmailMessage> {
        let subject = format!("Seu pedido nº {} foi enviado", shipment.order_number);
        let ctx = context! {
            customer_name => &shipment.customer_name,
            order_number => &shipment.order_number,
            carrier => &shipment.carrier,
            tracking_number => &shipment.tracking_number,
            tracking_url => format!(
                "{}/orders/tracking/{}",
                self.branding.frontend_url,
                encode_component(&shipment.order_number)
            ),
        };
        self.render("order_shipped", to, subject, ctx)
    }

    pub fn invoice_issued(&self, to: &str, invoice: &InvoiceIssued) -> crate::Result<EmailMessage> {
        let subject = format!("Nota fiscal do pedido nº {}", invoice.order_number);
        let ctx = context! {
            customer_name => &invoice.customer_name,
            order_number => &invoice.order_number,
            invoice_number => &invoice.invoice_number,
            series => &invoice.series,
            access_key => &invoice.access_key,
            pdf_url => &invoice.pdf_url,
            order_url => self.order_url(invoice.order_id),
        };
        self.render("invoice_issued", to, subject, ctx)
    }

    pub fn password_reset(&self, to: &str, reset: &PasswordReset) -> crate::Result<EmailMessage> {
        let ctx = context! {
            name => &reset.name,
            reset_url => format!(
                "{}/reset-password?token={}",
                self.branding.frontend_url,
                encode_component(&reset.token)
            ),
            valid_for => describe_duration(reset.valid_for),
        };
        self.render("password_reset", to, "Redefinição de senha".to_owned(), ctx)
    }

    pub fn email_changed(&self, to: &str, change: &EmailChanged) -> crate::Result<EmailMessage> {
        let ctx = context! {
            name => &change.name,
            new_email => mask_email(&change.new_email),
        };
        self.render(
            "email_changed",
            to,
            "O e-mail da sua conta foi alterado".to_owned(),
            ctx,
        )
    }

    fn order_url(&self, order_id: Uuid) -> String {
        format!("{}/orders/{order_id}", self.branding.frontend_url)
    }

    fn render(
        &self,
        kind: &str,
        to: &str,
        subject: String,
        data: minijinja::Value,
    ) -> crate::Result<EmailMessage> {
        let subject = format!("{}: {subject}", self.branding.store_name);
        let ctx = context! {
            store_name => &self.branding.store_name,
            frontend_url => &self.branding.frontend_url,
            subject => &subject,
            ..data
        };
        let render = |extension: &str| {
            self.env
                .get_template(&format!("{kind}.{extension}"))
                .and_then(|template| template.render(&ctx))
                .map_err(template_error)
        };
        Ok(EmailMessage {
            to: to.to_owned(),
            text: render("txt")?,
            html: render("html")?,
            subject,
            tag: kind.to_owned(),
        })
    }
}

fn template_error(err: minijinja::Error) -> crate::Error {
    crate::Error::Internal(anyhow::anyhow!("e-mail template: {err:#}"))
}

/// A URL for an HTML attribute. The default escaping would also turn every `/` into `&#x2f;`,
/// which is valid but unreadable in the source of an e-mail; only what could break out of the
/// attribute or start an entity is escaped here.
fn url_attribute(url: String) -> minijinja::Value {
    let mut escaped = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            other => escaped.push(other),
        }
    }
    minijinja::Value::from_safe_string(escaped)
}

fn method_label(method: &str) -> &str {
    match method {
        "pix" => "PIX",
        "credit_card" => "cartão de crédito",
        other => other,
    }
}

/// "1 hora", "30 minutos", "2 dias": how long a link stays valid, in words.
fn describe_duration(duration: Duration) -> String {
    let minutes = (duration.as_secs() / 60).max(1);
    let (amount, singular, plural) = if minutes.is_multiple_of(24 * 60) {
        (minutes / (24 * 60), "dia", "dias")
    } else if minutes.is_multiple_of(60) {
        (minutes / 60, "hora", "horas")
    } else {
        (minutes, "minuto", "minutos")
    };
    format!("{amount} {}", if amount == 1 { singular } else { plural })
}

/// `ana.souza@example.com` → `a***@example.com`: enough for the owner to recognise, not a
/// working address for whoever reads the old mailbox.
pub(crate) fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a query or path part.
fn encode_component(raw: &str) -> String {
    let mut encoded = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        Templates::new(Branding::new("Loja da Ana", "https://loja.example/")).unwrap()
    }

    fn order_id() -> Uuid {
        Uuid::parse_str("0193a5c8-7b1e-7c3d-9f00-000000000001").unwrap()
    }

    #[test]
    fn order_placed_lists_items_and_totals_in_reais() {
        let order = OrderPlaced {
            customer_name: "Ana <Souza>".into(),
            order_id: order_id(),
            order_number: "1042".into(),
            items: vec![
                OrderLine {
                    name: "Caneca".into(),
                    quantity: 2,
                    unit_price_cents: 4_990,
                    line_total_cents: 9_980,
                },
                OrderLine {
                    name: "Luminária".into(),
                    quantity: 1,
                    unit_price_cents: 123_456,
                    line_total_cents: 123_456,
                },
            ],
            subtotal_cents: 133_436,
            discount_cents: 1_000,
            shipping_cents: 1_850,
            total_cents: 134_286,
        };
        let message = templates().order_placed("ana@example.com", &order).unwrap();
        assert_eq!(message.tag, "order_placed");
        assert_eq!(message.to, "ana@example.com");
        assert_eq!(
            message.subject,
            "Loja da Ana: Recebemos o seu pedido nº 1042"
        );
        for body in [&message.text, &message.html] {
            assert!(body.contains("R$ 1.234,56"), "{body}");
            assert!(body.contains("R$ 1.342,86"), "{body}");
            assert!(body.contains("-R$ 10,00"), "{body}");
            assert!(
                body.contains("https://loja.example/orders/0193a5c8-7b1e-7c3d-9f00-000000000001")
            );
        }
        assert!(message.text.contains("- 2 x Caneca (R$ 49,90): R$ 99,80\n"));
        assert!(message.text.starts_with("Olá, Ana <Souza>!\n\n"));
        // The HTML version escapes what customers typed; the text version keeps it as is.
        assert!(message.html.contains("Ana &lt;Souza&gt;"));
        assert!(!message.text.contains("\n\n\n"), "{}", message.text);
    }

    #[test]
    fn a_discount_line_only_appears_when_there_is_a_discount() {
        let order = OrderPlaced {
            customer_name: "Bia".into(),
            order_id: order_id(),
            order_number: "7".into(),
            items: vec![],
            subtotal_cents: 1_000,
            discount_cents: 0,
            shipping_cents: 0,
            total_cents: 1_000,
        };
        let message = templates().order_placed("bia@example.com", &order).unwrap();
        assert!(!message.text.contains("Desconto"));
        assert!(!message.html.contains("Desconto"));
    }

    #[test]
    fn payment_confirmed_names_the_method_and_amount() {
        let message = templates()
            .payment_confirmed(
                "ana@example.com",
                &PaymentConfirmed {
                    customer_name: "Ana".into(),
                    order_id: order_id(),
                    order_number: "1042".into(),
                    amount_cents: 134_286,
                    method: "pix".into(),
                },
            )
            .unwrap();
        assert_eq!(message.tag, "payment_confirmed");
        assert!(message.text.contains("R$ 1.342,86 via PIX"));
        assert!(message.html.contains("via PIX"));
    }

    #[test]
    fn order_shipped_carries_the_tracking_code_and_link() {
        let message = templates()
            .order_shipped(
                "ana@example.com",
                &OrderShipped {
                    customer_name: "Ana".into(),
                    order_id: order_id(),
                    order_number: "1042".into(),
                    carrier: "Correios".into(),
                    tracking_number: "AA123456789BR".into(),
                },
            )
            .unwrap();
        assert_eq!(message.tag, "order_shipped");
        assert!(message.text.contains("AA123456789BR"));
        assert!(
            message
                .text
                .contains("https://loja.example/orders/tracking/1042")
        );
        assert!(message.html.contains("pela Correios"));
    }

    #[test]
    fn invoice_issued_shows_the_access_key_and_optional_pdf() {
        let mut invoice = InvoiceIssued {
            customer_name: "Ana".into(),
            order_id: order_id(),
            order_number: "1042".into(),
            invoice_number: "123".into(),
            series: "1".into(),
            access_key: "35261112345678000195550010000001231000001234".into(),
            pdf_url: Some("https://nfe.example/danfe.pdf".into()),
        };
        let message = templates()
            .invoice_issued("ana@example.com", &invoice)
            .unwrap();
        assert_eq!(message.tag, "invoice_issued");
        assert!(message.text.contains(&invoice.access_key));
        assert!(
            message
                .text
                .contains("DANFE (PDF): https://nfe.example/danfe.pdf")
        );
        assert!(message.html.contains("https://nfe.example/danfe.pdf"));

        invoice.pdf_url = None;
        let message = templates()
            .invoice_issued("ana@example.com", &invoice)
            .unwrap();
        assert!(!message.text.contains("DANFE"));
        assert!(!message.html.contains("DANFE"));
    }

    #[test]
    fn password_reset_links_to_the_front_end_with_the_token() {
        let message = templates()
            .password_reset(
                "ana@example.com",
                &PasswordReset {
                    name: "Ana".into(),
                    token: "abc+def/ghi=".into(),
                    valid_for: Duration::from_secs(3600),
                },
            )
            .unwrap();
        assert_eq!(message.tag, "password_reset");
        assert_eq!(message.subject, "Loja da Ana: Redefinição de senha");
        let link = "https://loja.example/reset-password?token=abc%2Bdef%2Fghi%3D";
        assert!(message.text.contains(link), "{}", message.text);
        assert!(message.html.contains(link));
        assert!(message.text.contains("vale por 1 hora"));
    }

    #[test]
    fn email_changed_goes_to_the_old_address_showing_the_new_one_masked() {
        let message = templates()
            .email_changed(
                "antigo@example.com",
                &EmailChanged {
                    name: "Ana".into(),
                    new_email: "novo.endereco@example.org".into(),
                },
            )
            .unwrap();
        assert_eq!(message.tag, "email_changed");
        assert_eq!(message.to, "antigo@example.com");
        for body in [&message.text, &message.html] {
            assert!(body.contains("n***@example.org"), "{body}");
            assert!(!body.contains("novo.endereco"), "{body}");
        }
    }

    #[test]
    fn urls_in_html_escape_only_what_could_break_the_attribute() {
        assert_eq!(
            url_attribute("https://x.example/a?b=1&c=\"2\"".into()).to_string(),
            "https://x.example/a?b=1&amp;c=&quot;2&quot;"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(
            describe_duration(Duration::from_secs(30 * 60)),
            "30 minutos"
        );
        assert_eq!(describe_duration(Duration::from_secs(7200)), "2 horas");
        assert_eq!(describe_duration(Duration::from_secs(86_400)), "1 dia");
        assert_eq!(describe_duration(Duration::from_secs(5)), "1 minuto");
    }
}
