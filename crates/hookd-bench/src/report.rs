//! A scenario's figures: printed as a table, written as JSON.

use serde::Serialize;

/// A figure's goal from issue 6 (judged only on full runs; `--quick` runs are too short
/// to mean anything).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtLeast(f64),
    Below(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Self::AtLeast(t) => value >= t,
            Self::Below(t) => value < t,
        }
    }

    fn text(self) -> String {
        match self {
            Self::AtLeast(t) => format!(">= {t}"),
            Self::Below(t) => format!("< {t}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub backend: &'static str,
    pub quick: bool,
    pub commit: String,
    /// What the run was given (concurrency, rate, endpoints, window...).
    pub params: serde_json::Value,
    pub figures: Vec<Figure>,
    /// Things the reader should know about this run (errors, a backlog left behind...).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(
        scenario: &'static str,
        backend: &'static str,
        quick: bool,
        params: serde_json::Value,
    ) -> Self {
        Self {
            scenario,
            backend,
            quick,
            commit: commit(),
            params,
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &str, value: f64, unit: &'static str) {
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            unit,
            target: None,
            met: None,
        });
    }

    /// A figure with its goal; judged when the run is not `--quick` and the goal applies
    /// to this backend (`None` = every backend).
    pub fn add_goal(&mut self, name: &str, value: f64, unit: &'static str, target: Target) {
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            unit,
            target: Some(target),
            met: (!self.quick).then(|| target.met(value)),
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn print(&self) {
        println!();
        println!(
            "{} on {} ({}{}) {}",
            self.scenario,
            self.backend,
            self.commit,
            if self.quick { ", --quick" } else { "" },
            self.params
        );
        for f in &self.figures {
            let value = if f.value.abs() >= 100.0 {
                format!("{:.0}", f.value)
            } else {
                format!("{:.2}", f.value)
            };
            let goal = match (f.target, f.met) {
                (Some(t), Some(met)) => {
                    format!("  target {} {}", t.text(), if met { "met" } else { "MISSED" })
                }
                (Some(t), None) => format!("  target {} (not judged: --quick)", t.text()),
                _ => String::new(),
            };
            println!("  {:<38} {:>10} {:<6}{goal}", f.name, value, f.unit);
        }
        for n in &self.notes {
            println!("  note: {n}");
        }
    }
}

/// The commit measured (`-dirty` with uncommitted changes), or "unknown".
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(id) => {
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{id}-dirty") } else { id }
        }
        None => "unknown".to_owned(),
    }
}
