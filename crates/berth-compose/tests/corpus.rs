//! Coolify's catalogue, planned file by file (`../shared/coolify-templates/`
//! beside the checkout). Prints the count planned cleanly and each failure.

use std::path::PathBuf;

use berth_compose::{Format, Options, plan};

#[test]
fn coolify_templates_plan_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/coolify-templates");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the Coolify corpus is missing at {} ({e}); it is expected beside the checkout",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // As at install: the user fills the required fields the first plan
        // asks for, then berth plans again.
        let first = plan(&text, Format::Coolify, &Options::default());
        let mut options = Options::default();
        for input in first.inputs.iter().filter(|i| i.required) {
            options
                .inputs
                .insert(input.name.clone(), "given".to_owned());
        }
        let planned = plan(&text, Format::Coolify, &options);
        if !planned.is_ok() {
            let reasons: Vec<String> = planned.errors.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{}: {}",
                file.file_name().unwrap().to_string_lossy(),
                reasons.join("; ")
            ));
        }
    }
    let clean = files.len() - failures.len();
    println!("planned cleanly: {clean} of {}", files.len());
    for f in &failures {
        println!("  {f}");
    }
    assert_eq!(files.len(), 328, "the corpus has 328 templates");
    assert!(
        clean * 100 >= files.len() * 97,
        "{clean} of {} planned cleanly; the goal is 97 %",
        files.len()
    );
}
