//! The Kafka topics' JSON Schemas in `schemas/kafka/` are the ones generated from the message
//! types: a change to a message that is not reflected in the checked-in schema fails here.
//! Regenerate them with `CRYPTOFLOW_BLESS=1 cargo test --test offline kafka_schemas`.

use cryptoflow_sinks::kafka::topic_schemas;

#[test]
fn kafka_schemas_are_generated_from_the_message_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/kafka");
    let bless = std::env::var_os("CRYPTOFLOW_BLESS").is_some();
    let generated = topic_schemas();
    assert_eq!(generated.len(), 7, "one schema per topic");
    for (file, schema) in generated {
        let text = serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n";
        let path = dir.join(file);
        if bless {
            std::fs::write(&path, &text).expect("write the schema");
            continue;
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            stored == text,
            "{} differs from the schema generated from the message types; regenerate it: \
             CRYPTOFLOW_BLESS=1 cargo test --test offline kafka_schemas",
            path.display()
        );
    }
}
