//! The README's two "quantize your own model" examples on real data (scikit-learn's digits):
//! a CNN and a transformer, trained in Burn, quantized with one call. Int8 must stay within one
//! accuracy point of fp32 on the held-out split.

// Each example is its own crate, with its own copy of `examples/common/digits.rs`; compiled
// into this one test binary, the copies are separate modules, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "../examples/quantize_cnn.rs"]
mod quantize_cnn;
#[allow(clippy::duplicate_mod)]
#[path = "../examples/quantize_transformer.rs"]
mod quantize_transformer;

use burn_int8::LayerKind;

fn assert_within_one_point(what: &str, fp32: f32, int8: f32) {
    eprintln!("{what}: fp32 accuracy {fp32:.4}, int8 accuracy {int8:.4}");
    assert!(
        fp32 > 0.85,
        "{what}: the float model did not learn ({fp32})"
    );
    assert!(
        (fp32 - int8).abs() <= 0.01,
        "{what}: int8 {int8} is more than 1 point from fp32 {fp32}"
    );
}

#[test]
fn cnn_on_digits_int8_within_one_point_of_fp32() {
    let report = quantize_cnn::run(300).expect("run the CNN example");
    let changed: Vec<_> = report
        .quantize
        .changed
        .iter()
        .map(|(path, kind)| (path.as_str(), *kind))
        .collect();
    assert_eq!(
        changed,
        [
            ("conv1", LayerKind::Conv2d),
            ("conv2", LayerKind::Conv2d),
            ("head", LayerKind::Linear)
        ]
    );
    // The model the example hands back is the quantized one the report describes.
    assert_eq!(
        burn_int8::param_bytes(&report.model),
        report.quantize.bytes_after,
        "the returned model is not the int8 one"
    );
    assert!(
        report.quantize.bytes_after * 3 < report.quantize.bytes_before,
        "{}",
        report.quantize
    );
    assert_within_one_point("cnn", report.fp32_accuracy, report.int8_accuracy);
    assert_within_one_point(
        "cnn, per sample",
        report.fp32_accuracy,
        report.sample_accuracy,
    );
}

#[test]
fn transformer_on_digit_rows_int8_within_one_point_of_fp32() {
    let report = quantize_transformer::run(400).expect("run the transformer example");
    // embed, 2 layers × (query, key, value, output, linear_inner, linear_outer), head.
    assert_eq!(
        report.quantize.changed.len(),
        14,
        "{:?}",
        report.quantize.changed
    );
    assert!(report.quantize.skipped.is_empty(), "{}", report.quantize);
    assert_within_one_point("transformer", report.fp32_accuracy, report.int8_accuracy);
}
