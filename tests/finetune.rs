//! The fine-tuning example (`examples/finetune_int8.rs`) on the real digits data: after
//! quantizing, the loss goes down, the float parts train (the norm only through the int8
//! layer's straight-through gradient) and the int8 weights do not move.

#[allow(clippy::duplicate_mod)]
#[path = "../examples/finetune_int8.rs"]
mod finetune_int8;

#[test]
fn a_quantized_model_fine_tunes_around_its_frozen_int8_layers() {
    let report = finetune_int8::run(60, 40).expect("run the example");
    assert!(
        report.fp32_accuracy > 0.8,
        "the float model did not learn: {}",
        report.fp32_accuracy
    );
    assert!(
        report.int8_accuracy >= report.fp32_accuracy - 0.02,
        "int8 {} against fp32 {}",
        report.int8_accuracy,
        report.fp32_accuracy
    );

    let losses = &report.finetune_losses;
    let mean = |window: &[f32]| window.iter().sum::<f32>() / window.len() as f32;
    let (first, last) = (mean(&losses[..8]), mean(&losses[losses.len() - 8..]));
    assert!(
        last < 0.8 * first,
        "fine-tuning loss went from {first} to {last}"
    );

    let (before, after) = (&report.before_finetuning, &report.finetuned);
    let (Some(mix_before), Some(mix_after)) = (before.mix.int8_layer(), after.mix.int8_layer())
    else {
        panic!("`mix` should be int8");
    };
    assert_eq!(
        mix_before.weight.values.val().into_data(),
        mix_after.weight.values.val().into_data(),
        "int8 weight moved"
    );
    assert_eq!(
        mix_before.weight.scale().into_data(),
        mix_after.weight.scale().into_data(),
        "scale moved"
    );
    assert_ne!(
        before.norm.gamma.val().into_data(),
        after.norm.gamma.val().into_data(),
        "the norm upstream of the int8 layer did not train"
    );
}
