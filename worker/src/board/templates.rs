//! The board's pages: minijinja templates under `templates/`, embedded in the binary. Names
//! ending in `.html` are auto-escaped; the only markup passed in whole is the charts' SVG,
//! built from numbers and times (`chart`).

use minijinja::Environment;
use serde::Serialize;

const SOURCES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("message.html", include_str!("templates/message.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("failed.html", include_str!("templates/failed.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("job.html", include_str!("templates/job.html")),
    ("search.html", include_str!("templates/search.html")),
];

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, source) in SOURCES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    pub fn render<S: Serialize>(&self, name: &str, context: S) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        Templates::new().unwrap();
    }

    #[test]
    fn text_from_the_queue_is_escaped() {
        let templates = Templates::new().unwrap();
        let html = templates
            .render(
                "message.html",
                minijinja::context! { title => "<script>x</script>", text => "a & b" },
            )
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;x&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }
}
