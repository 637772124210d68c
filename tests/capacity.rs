//! docs/capacity.md holds the capacity and cost model as the code now produces it: a change that
//! moves a figure (an attribute added to an item, a request added to an operation, a template
//! setting) shows up here until `tests/bench capacity` is run and the document says so.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_document_is_what_the_model_says() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/capacity.md");
    let document = std::fs::read_to_string(&path).unwrap();
    let generated = teleapi_tests::capacity::model().await;
    let expected = teleapi_tests::capacity::with_model(&document, &generated)
        .expect("docs/capacity.md has the generated section's markers");
    if expected != document {
        let (now, was): (Vec<&str>, Vec<&str>) =
            (expected.lines().collect(), document.lines().collect());
        let first = now.iter().zip(&was).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "docs/capacity.md is out of date: run `tests/bench capacity`.\nfirst difference, line {}:\n  model: {}\n  doc:   {}",
            first + 1,
            now.get(first).unwrap_or(&""),
            was.get(first).unwrap_or(&"")
        );
    }
}
