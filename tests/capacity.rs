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

/// Every table, index, queue and bucket of the template is used by an operation of the model: a
/// resource nobody models has no ceiling anyone knows. The one left out is the commands'
/// dead-letter queue, which SQS fills itself (a command received five times); nothing of ours
/// sends to it or reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_uses_every_table_index_queue_and_bucket() {
    use std::collections::BTreeSet;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let template: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // `CallLogTable` is `call-log`, `EventsDeadLetterQueue` is `events-dlq`: the names the
    // stores and queues have, less their stack's prefix.
    let kebab = |id: &str| {
        let mut name = String::new();
        for (i, c) in id.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        }
        name.replace("-dead-letter", "-dlq")
    };
    let mut declared = BTreeSet::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        match resource["Type"].as_str().unwrap_or_default() {
            "AWS::DynamoDB::Table" => {
                let table = kebab(id.strip_suffix("Table").unwrap());
                let indexes = resource["Properties"]["GlobalSecondaryIndexes"].as_sequence();
                // Less an index kept only for an upgrade (`!If`: the calls' old `listing`).
                for index in indexes.into_iter().flatten().filter(|i| i.is_mapping()) {
                    declared.insert(format!("{table}/{}", index["IndexName"].as_str().unwrap()));
                }
                declared.insert(table);
            }
            "AWS::SQS::Queue" => {
                declared.insert(kebab(id.strip_suffix("Queue").unwrap()));
            }
            "AWS::S3::Bucket" => {
                declared.insert(format!(
                    "bucket {}",
                    kebab(id.strip_suffix("Bucket").unwrap())
                ));
            }
            _ => {}
        }
    }
    assert!(
        declared.len() > 25,
        "the template's resources were read: {declared:?}"
    );
    let mut used = BTreeSet::new();
    for op in teleapi_tests::capacity::measured().await {
        let usage = teleapi_tests::capacity::model::usage(&op);
        used.extend(usage.read_units.into_keys());
        used.extend(usage.write_units.into_keys());
        for request in usage.sqs.into_keys() {
            used.insert(request.split(' ').next().unwrap().to_owned());
        }
        for request in usage.s3.into_keys() {
            used.insert(format!("bucket {}", request.split(' ').next().unwrap()));
        }
    }
    let unmodelled: Vec<&String> = declared.difference(&used).collect();
    assert_eq!(
        unmodelled,
        ["commands-dlq"],
        "in the template, in no operation of the model (tests/support/capacity/drive.rs)"
    );
}
