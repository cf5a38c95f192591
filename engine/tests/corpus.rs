//! Replays the YAML case corpus in `tests/cases/`: one test per file.

use std::path::Path;

use pdp_engine::testsuite::{run_file, TestFile};

fn run(path: &Path, text: String) -> datatest_stable::Result<()> {
    let origin = path.display().to_string();
    let file = TestFile::from_yaml(&text).map_err(|e| format!("{origin}: {e}"))?;
    if file.description.as_deref().is_none_or(str::is_empty) {
        return Err(format!("{origin}: a case file needs a `description`").into());
    }
    let built = file.build_set(&origin);
    if let Some(needles) = &file.compile_error {
        let errors = match built {
            Ok(_) => {
                return Err(
                    format!("{origin}: expected the set to be rejected, but it compiled").into(),
                )
            }
            Err(e) => e.to_string(),
        };
        for n in needles {
            if !errors.contains(n.as_str()) {
                return Err(format!("{origin}: the errors do not mention `{n}`:\n{errors}").into());
            }
        }
        return Ok(());
    }
    let set = built.map_err(|e| format!("{origin}: {e}"))?;
    if file.cases.is_empty() {
        return Err(format!("{origin}: no cases").into());
    }
    let report = run_file(&set, &file);
    if report.failed.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = report
        .failed
        .iter()
        .map(|(n, e)| format!("  {n}: {e}"))
        .collect();
    Err(format!(
        "{origin}: {} of {} cases failed:\n{}",
        report.failed.len(),
        file.cases.len(),
        lines.join("\n")
    )
    .into())
}

datatest_stable::harness! {
    { test = run, root = "tests/cases", pattern = r".*\.yaml$" },
}
