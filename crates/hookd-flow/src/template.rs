//! Templates for a flow's text fields, in Jinja syntax (`Hello {{ trigger.body.name }}`),
//! rendered against a run's data ([`RunData`]).
//!
//! Sandboxed: the language is built without `include`, `import` and `extends` (no
//! template can reach another, or a file), and no loader is set;
//! every render has a fuel budget ([`FUEL`]), so a template that loops for ever ends
//! with an error; output is bounded ([`MAX_OUTPUT_BYTES`]). A value that is not there
//! is an error (`{{ x | default("") }}` when it may be missing), so a typo fails the
//! step instead of sending an empty field. A [`Kind::Html`] template escapes every
//! value it prints.
//!
//! A [`Mapping`] is JSON whose strings may be templates: a string that is a single
//! `{{ expression }}` gives the expression's value with its type (a number stays a
//! number, an object an object); any other string with `{{` or `{%` renders to text.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Map, Value};

/// Instructions a render may run.
pub const FUEL: u64 = 100_000;
/// Longest template source, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;
/// Longest rendered text, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// A template refused when a flow is saved, or a render that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Whether printed values are escaped for HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Html,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Text => "template.txt",
            Self::Html => "template.html",
        }
    }
}

/// What templates see: `trigger`, `steps` (each earlier step's output by name) and
/// `run` (`id`, `flow`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunData {
    pub trigger: Value,
    pub steps: Map<String, Value>,
    pub run: Value,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// The engine's message, which names the template and line (`syntax error: unexpected
/// end of input (in template.txt:1)`).
fn error(e: &minijinja::Error) -> TemplateError {
    TemplateError(e.to_string())
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    kind: Kind,
}

impl Template {
    /// Checks `source`'s size and syntax (nothing is rendered).
    pub fn parse(source: &str, kind: Kind) -> Result<Self, TemplateError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(TemplateError(format!(
                "a template may have at most {MAX_SOURCE_BYTES} bytes"
            )));
        }
        environment()
            .template_from_named_str(kind.name(), source)
            .map_err(|e| error(&e))?;
        Ok(Self {
            source: source.to_owned(),
            kind,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders it against `data`.
    pub fn render(&self, data: &RunData) -> Result<String, TemplateError> {
        let env = environment();
        let out = env
            .render_named_str(
                self.kind.name(),
                &self.source,
                minijinja::Value::from(minijinja::value::Serde(data)),
            )
            .map_err(|e| error(&e))?;
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(TemplateError(format!(
                "the rendered text is longer than {MAX_OUTPUT_BYTES} bytes"
            )));
        }
        Ok(out)
    }
}

/// One string of a [`Mapping`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    /// No template syntax: itself.
    Plain(String),
    /// `{{ expression }}` alone: its value.
    Expression(String),
    Text(Template),
}

/// JSON whose strings may be templates (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    source: Value,
}

/// The expression of a string that is exactly one `{{ ... }}`.
fn sole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner.trim())
}

fn leaf(s: &str) -> Result<Leaf, TemplateError> {
    if let Some(expr) = sole_expression(s) {
        environment().compile_expression(expr).map_err(|e| error(&e))?;
        return Ok(Leaf::Expression(expr.to_owned()));
    }
    if s.contains("{{") || s.contains("{%") {
        return Template::parse(s, Kind::Text).map(Leaf::Text);
    }
    Ok(Leaf::Plain(s.to_owned()))
}

impl Mapping {
    /// Checks every template in `source`; the error names the JSON pointer of the bad one.
    pub fn parse(source: &Value) -> Result<Self, (String, TemplateError)> {
        fn walk(v: &Value, at: &mut String) -> Result<(), (String, TemplateError)> {
            match v {
                Value::String(s) => leaf(s).map(drop).map_err(|e| (at.clone(), e)),
                Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    let r = walk(item, at);
                    at.truncate(len);
                    r
                }),
                Value::Object(map) => map.iter().try_for_each(|(k, item)| {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    let r = walk(item, at);
                    at.truncate(len);
                    r
                }),
                _ => Ok(()),
            }
        }
        walk(source, &mut String::new())?;
        Ok(Self {
            source: source.clone(),
        })
    }

    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The JSON it makes of `data`.
    pub fn render(&self, data: &RunData) -> Result<Value, TemplateError> {
        fn walk(v: &Value, data: &RunData, env: &Environment<'_>) -> Result<Value, TemplateError> {
            Ok(match v {
                Value::String(s) => match leaf(s)? {
                    Leaf::Plain(s) => Value::String(s),
                    Leaf::Text(t) => Value::String(t.render(data)?),
                    Leaf::Expression(expr) => {
                        let value = env
                            .compile_expression(&expr)
                            .and_then(|e| e.eval(minijinja::Value::from(minijinja::value::Serde(data))))
                            .map_err(|e| error(&e))?;
                        if value.is_undefined() {
                            return Err(TemplateError(format!("{expr:?} is not defined")));
                        }
                        serde_json::to_value(&value).map_err(|e| TemplateError(e.to_string()))?
                    }
                },
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| walk(i, data, env))
                        .collect::<Result<_, _>>()?,
                ),
                Value::Object(map) => Value::Object(
                    map.iter()
                        .map(|(k, i)| Ok((k.clone(), walk(i, data, env)?)))
                        .collect::<Result<_, TemplateError>>()?,
                ),
                other => other.clone(),
            })
        }
        walk(&self.source, data, &environment())
    }
}
