//! A Burn user's whole workflow on Burn's own example models (v0.21.0: mnist,
//! text-classification, modern-lstm), copied as Burn wrote them (`burn_*.rs`) and converted
//! the way the README says (`int8_*.rs`: `use` lines and derives only, which
//! [`conversion_changes_only_use_lines_and_derives`] checks):
//!
//! 1. a checkpoint saved by the plain Burn model with Burn's recorder loads into the converted
//!    model with Burn's own `load_file`, and through burn-store, and the outputs are Burn's bit
//!    for bit (and the converted float model's checkpoint loads back into Burn's model);
//! 2. the converted model quantizes, saves with every recorder a Burn user has
//!    (`NamedMpkFileRecorder` full and half precision, `BinFileRecorder`, `CompactRecorder`,
//!    burn-store's Burnpack), and reloads as int8: I8 in memory, int8-sized files, outputs equal
//!    to the saved model's bit for bit (half precision: Burn rounds the float parameters to f16,
//!    as it does for any model, while the int8 values and scales come back exact).
//!
//! Models are small (few channels, short sequences) and untrained: these are format tests.

#![allow(dead_code)]

mod stand_ins;

mod burn_mnist;
mod burn_modern_lstm;
mod burn_text_classification;
mod int8_mnist;
mod int8_modern_lstm;
mod int8_text_classification;

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::record::{
    BinFileRecorder, CompactRecorder, FileRecorder, FullPrecisionSettings, HalfPrecisionSettings,
    NamedMpkFileRecorder,
};
use burn::tensor::{Bool, DType, Distribution, Int, Tensor, TensorData, backend::Backend};
use burn_int8::{Int8Error, Quantize, QuantizeExt, param_bytes, store};
use burn_store::{BurnpackStore, ModuleSnapshot};

type B = NdArray;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "burn-int8-test-burn-examples-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The dtypes of every int parameter: an int8 layer's values must come back as I8.
fn int_dtypes<M: Module<B>>(model: &M) -> Vec<DType> {
    struct Dtypes(Vec<DType>);
    impl ModuleVisitor<B> for Dtypes {
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
            self.0.push(param.val().dtype());
        }
    }
    let mut visitor = Dtypes(Vec::new());
    model.visit(&mut visitor);
    visitor.0
}

/// `model` as a half-precision recorder stores it, computed independently of any recorder:
/// Burn rounds every float parameter to f16 and back; an int8 layer's scales
/// (`….Int8.weight.scale`) and values are kept exact by this crate.
fn as_half_precision_stores_it<M: Module<B>>(model: M) -> M {
    struct ToHalf(Vec<String>);
    impl ModuleMapper<B> for ToHalf {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.0.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let path = self.0.join(".");
            if path.contains(".Int8.weight") || path.starts_with("Int8.weight") {
                return param;
            }
            param.map(|tensor| {
                let device = tensor.device();
                let half = tensor.into_data().convert::<burn::tensor::f16>();
                Tensor::from_data(half.convert::<f32>(), &device)
            })
        }
    }
    model.map(&mut ToHalf(Vec::new()))
}

/// One example model through the workflow (module docs): `plain` is the Burn model (its
/// parameters already read), `fresh_plain` and `fresh` build a new Burn and converted model.
fn workflow<P, Q>(
    name: &str,
    plain: P,
    fresh_plain: impl Fn() -> P,
    fresh: impl Fn() -> Q,
    forward_plain: impl Fn(&P) -> Tensor<B, 2>,
    forward: impl Fn(&Q) -> Tensor<B, 2>,
) where
    P: Module<B>,
    Q: Module<B> + Quantize<B>,
{
    let device = Default::default();
    let dir = temp_dir(name);
    let burn_output = forward_plain(&plain).into_data();
    let full = NamedMpkFileRecorder::<FullPrecisionSettings>::new();

    // 1. Burn's checkpoint, Burn's call: the converted model is Burn's model, bit for bit.
    plain.clone().save_file(dir.join("burn"), &full).unwrap();
    let mut model = fresh().load_file(dir.join("burn"), &full, &device).unwrap();
    assert_eq!(
        forward(&model).into_data(),
        burn_output,
        "{name}: Burn's NamedMpk checkpoint loaded into the converted model"
    );
    let bin = BinFileRecorder::<FullPrecisionSettings>::new();
    plain.clone().save_file(dir.join("burn-bin"), &bin).unwrap();
    let loaded = fresh()
        .load_file(dir.join("burn-bin"), &bin, &device)
        .unwrap();
    assert_eq!(
        forward(&loaded).into_data(),
        burn_output,
        "{name}: Burn's bincode"
    );
    // burn-store: the same tensor names.
    let burnpack = dir.join("burn.bpk");
    plain
        .save_into(&mut BurnpackStore::from_file(&burnpack).overwrite(true))
        .unwrap();
    let mut via_store = fresh();
    let result = via_store
        .load_from(&mut BurnpackStore::from_file(&burnpack))
        .unwrap();
    assert!(
        result.missing.is_empty() && result.unused.is_empty(),
        "{name}: {result:?}"
    );
    assert_eq!(
        forward(&via_store).into_data(),
        burn_output,
        "{name}: burn-store"
    );
    // And back: the converted float model's checkpoint is a Burn checkpoint.
    model.clone().save_file(dir.join("ours"), &full).unwrap();
    let back = fresh_plain()
        .load_file(dir.join("ours"), &full, &device)
        .unwrap();
    assert_eq!(
        forward_plain(&back).into_data(),
        burn_output,
        "{name}: back into Burn"
    );

    // 2. Quantize; every recorder keeps int8.
    let float_bytes = param_bytes::<B, _>(&model);
    model.quantize_int8().unwrap();
    let int8_output = forward(&model).into_data();
    let int8_bytes = param_bytes::<B, _>(&model);
    assert!(
        int8_bytes * 10 < float_bytes * 6,
        "{name}: {int8_bytes} bytes int8 vs {float_bytes} float"
    );
    let exact = |loaded: &Q, what: &str| {
        assert!(int_dtypes(loaded).iter().all(|dtype| *dtype == DType::I8));
        assert!(
            !int_dtypes(loaded).is_empty(),
            "{name}, {what}: no int8 weight"
        );
        assert_eq!(param_bytes::<B, _>(loaded), int8_bytes, "{name}, {what}");
    };
    let half_output = forward(&as_half_precision_stores_it(model.clone())).into_data();
    fn check<R: FileRecorder<B>, Q: Module<B>>(
        recorder: R,
        dir: &Path,
        what: &str,
        model: &Q,
        fresh: &impl Fn() -> Q,
    ) -> (Q, u64, u64) {
        let device = Default::default();
        let size = |file: &str| {
            let path = dir.join(file).with_extension(R::file_extension());
            std::fs::metadata(path).unwrap().len()
        };
        fresh()
            .save_file(dir.join(format!("{what}-float")), &recorder)
            .unwrap();
        model
            .clone()
            .save_file(dir.join(format!("{what}-int8")), &recorder)
            .unwrap();
        // A freshly built (float) model takes the int8 record with Burn's ordinary call.
        let loaded = fresh()
            .load_file(dir.join(format!("{what}-int8")), &recorder, &device)
            .unwrap();
        let (float, int8) = (
            size(&format!("{what}-float")),
            size(&format!("{what}-int8")),
        );
        (loaded, float, int8)
    }
    // (recorder, (reloaded, float file, int8 file), expected outputs, the most the int8 file may
    // be of the float one: 1 byte a weight against 4 (full) or 2 (half precision), plus the
    // scales and the float norms).
    let runs = [
        (
            "named-mpk-full",
            check(full.clone(), &dir, "named-mpk-full", &model, &fresh),
            &int8_output,
            0.6,
        ),
        (
            "named-mpk-half",
            check(
                NamedMpkFileRecorder::<HalfPrecisionSettings>::new(),
                &dir,
                "named-mpk-half",
                &model,
                &fresh,
            ),
            &half_output,
            0.8,
        ),
        (
            "bin-full",
            check(
                BinFileRecorder::<FullPrecisionSettings>::new(),
                &dir,
                "bin-full",
                &model,
                &fresh,
            ),
            &int8_output,
            0.6,
        ),
        (
            "compact",
            check(CompactRecorder::new(), &dir, "compact", &model, &fresh),
            &half_output,
            0.8,
        ),
    ];
    for (what, (loaded, float_size, int8_size), expected, at_most) in runs {
        exact(&loaded, what);
        assert_eq!(&forward(&loaded).into_data(), expected, "{name}, {what}");
        eprintln!("{name}, {what}: file {int8_size} bytes int8, {float_size} float");
        assert!(
            (int8_size as f64) < float_size as f64 * at_most,
            "{name}, {what}: {int8_size} bytes int8, {float_size} float"
        );
    }

    // burn-store: quantize the fresh model first (its tensor names say int8), then load.
    let int8_burnpack = dir.join("int8.bpk");
    model
        .save_into(&mut BurnpackStore::from_file(&int8_burnpack).overwrite(true))
        .unwrap();
    let mut loaded = fresh();
    loaded.quantize_int8().unwrap();
    let result = loaded
        .load_from(&mut BurnpackStore::from_file(&int8_burnpack))
        .unwrap();
    assert!(
        result.missing.is_empty() && result.unused.is_empty(),
        "{result:?}"
    );
    exact(&loaded, "burn-store");
    assert_eq!(
        forward(&loaded).into_data(),
        int8_output,
        "{name}, burn-store"
    );

    // `burn_int8::store`: the same file; an int8 record into a float model is a typed error.
    let mut float = fresh();
    assert!(matches!(
        store::load(&mut float, &int8_burnpack),
        Err(Int8Error::PrecisionMismatch { .. })
    ));
    assert!(matches!(
        store::load(&mut loaded, &burnpack),
        Err(Int8Error::PrecisionMismatch { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mnist_checkpoint_loads_quantizes_and_keeps_int8_in_every_recorder() {
    let device = Default::default();
    B::seed(&device, 7);
    let images = Tensor::<B, 3>::random([2, 28, 28], Distribution::Default, &device);
    let plain = burn_mnist::Model::<B>::new(&device);
    workflow(
        "mnist",
        plain,
        || burn_mnist::Model::new(&device),
        || int8_mnist::Model::new(&device),
        |model| model.forward(images.clone()),
        |model| model.forward(images.clone()),
    );
}

fn text_batch(
    device: &burn::backend::ndarray::NdArrayDevice,
) -> stand_ins::TextClassificationInferenceBatch<B> {
    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![3i64, 17, 5, 9, 0, 0, 4, 8, 15, 16, 23, 42], [2, 6]),
        device,
    );
    let mask_pad = Tensor::<B, 2, Bool>::from_data(
        TensorData::new(
            vec![
                false, false, false, false, true, true, false, false, false, false, false, false,
            ],
            [2, 6],
        ),
        device,
    );
    stand_ins::TextClassificationInferenceBatch { tokens, mask_pad }
}

#[test]
fn text_classification_checkpoint_loads_quantizes_and_keeps_int8_in_every_recorder() {
    use burn::nn::attention::SeqLengthOption;
    let device = Default::default();
    B::seed(&device, 11);
    // Burn's config for the Burn model; the converted model takes the same one with `.into()`.
    let burn_transformer = burn::nn::transformer::TransformerEncoderConfig::new(64, 128, 4, 2);
    let plain_config = burn_text_classification::TextClassificationModelConfig::new(
        burn_transformer.clone(),
        3,
        200,
        SeqLengthOption::Fixed(6),
    );
    let config = int8_text_classification::TextClassificationModelConfig::new(
        burn_transformer.into(),
        3,
        200,
        SeqLengthOption::Fixed(6),
    );
    let batch = text_batch(&device);
    let plain = plain_config.init::<B>(&device);
    workflow(
        "text-classification",
        plain,
        || plain_config.init(&device),
        || config.init(&device),
        |model| model.infer(batch.clone()),
        |model| model.infer(batch.clone()),
    );
}

#[test]
fn modern_lstm_checkpoint_loads_quantizes_and_keeps_int8_in_every_recorder() {
    let device = Default::default();
    B::seed(&device, 5);
    let input = Tensor::<B, 3>::random([2, 5, 1], Distribution::Default, &device);
    // Burn's defaults: 2 layers of 32, bidirectional.
    let plain_config = burn_modern_lstm::LstmNetworkConfig::new();
    let config = int8_modern_lstm::LstmNetworkConfig::new();
    let plain = plain_config.init::<B>(&device);
    workflow(
        "modern-lstm",
        plain,
        || plain_config.init(&device),
        || config.init(&device),
        |model| model.forward(input.clone(), None),
        |model| model.forward(input.clone(), None),
    );
}

/// Burn's cell code edits `weight_ih.bias` (the forget gate's slice set to 1): it compiles
/// unchanged and does the same on the converted model, whose layers are then quantizable.
#[test]
fn modern_lstm_cell_code_edits_the_bias_as_in_burn() {
    let device = Default::default();
    let hidden = 8;
    let mut cell = int8_modern_lstm::LstmCellConfig::new(3, hidden, 0.0).init::<B>(&device);
    let bias = cell.weight_ih.bias.as_ref().unwrap().val().into_data();
    let bias = bias.to_vec::<f32>().unwrap();
    assert_eq!(bias.len(), 4 * hidden);
    assert!(
        bias[hidden..2 * hidden].iter().all(|&b| b == 1.0),
        "{bias:?}"
    );
    assert!(bias[..hidden].iter().any(|&b| b != 1.0));

    cell.quantize_int8().unwrap();
    assert!(cell.weight_ih.is_quantized() && cell.weight_hh.is_quantized());
    // The bias stays a float field, read and written as in Burn.
    let after = cell.weight_ih.bias.as_ref().unwrap().val().into_data();
    assert_eq!(after.to_vec::<f32>().unwrap(), bias);
    let [d_input, d_output] = cell.weight_ih.weight_dims();
    assert_eq!([d_input, d_output], [3, 4 * hidden]);
    assert_eq!(
        cell.weight_ih.weight.lazy_shape().as_slice(),
        &[3, 4 * hidden]
    );
    assert_eq!(
        cell.weight_ih.int8_weight().unwrap().values.val().dtype(),
        DType::I8
    );
}

/// On an int8 layer, reading the float weight is a clear panic, not a silent float copy.
#[test]
#[should_panic(expected = "read `int8_weight()`, or `dequantize()` the model first")]
fn reading_the_float_weight_of_an_int8_layer_panics_with_the_fix() {
    let device = Default::default();
    let mut layer = burn_int8::nn::LinearConfig::new(4, 2).init::<B>(&device);
    layer.quantize_int8().unwrap();
    let _ = layer.weight.val();
}

/// Each converted file differs from Burn's only in its `use` lines, its header comment and the
/// `Quantize` in its derives.
#[test]
fn conversion_changes_only_use_lines_and_derives() {
    fn body(source: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut in_use = false;
        for line in source.lines() {
            if line.starts_with("//") && lines.is_empty() {
                continue; // the header (and Burn's own opening comment, the same in both)
            }
            if line.starts_with("use ") {
                in_use = true;
            }
            if in_use {
                in_use = !line.ends_with(';');
                continue;
            }
            lines.push(line.replace(
                "#[derive(Module, Debug, Quantize)]",
                "#[derive(Module, Debug)]",
            ));
        }
        lines
    }
    for (burn, converted) in [
        (include_str!("burn_mnist.rs"), include_str!("int8_mnist.rs")),
        (
            include_str!("burn_text_classification.rs"),
            include_str!("int8_text_classification.rs"),
        ),
        (
            include_str!("burn_modern_lstm.rs"),
            include_str!("int8_modern_lstm.rs"),
        ),
    ] {
        assert_eq!(body(burn), body(converted));
        assert!(converted.contains("burn_int8"));
    }
}

/// Configs convert both ways with `.into()`, field for field.
#[test]
fn configs_convert_both_ways() {
    use burn::nn;
    use burn_int8::nn as int8;
    fn same<A: serde::Serialize, Z: serde::Serialize>(a: &A, z: &Z) {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(z).unwrap()
        );
    }
    let burn = nn::LinearConfig::new(3, 4).with_bias(false);
    let ours: int8::LinearConfig = burn.clone().into();
    same(&burn, &ours);
    same(&nn::LinearConfig::from(ours), &burn);
    let burn = nn::conv::Conv2dConfig::new([2, 4], [3, 3]).with_groups(2);
    let ours: int8::conv::Conv2dConfig = burn.clone().into();
    same(&burn, &ours);
    let burn = nn::conv::Conv1dConfig::new(2, 4, 3).with_stride(2);
    let ours: int8::conv::Conv1dConfig = burn.clone().into();
    same(&burn, &ours);
    let burn = nn::EmbeddingConfig::new(10, 4);
    same(&burn, &int8::EmbeddingConfig::from(burn.clone()));
    let burn = nn::LstmConfig::new(3, 5, true).with_batch_first(false);
    same(&burn, &int8::LstmConfig::from(burn.clone()));
    let burn = nn::BiLstmConfig::new(3, 5, true);
    same(&burn, &int8::BiLstmConfig::from(burn.clone()));
    let burn = nn::GruConfig::new(3, 5, true);
    same(&burn, &int8::GruConfig::from(burn.clone()));
    let burn = nn::BiGruConfig::new(3, 5, true);
    same(&burn, &int8::BiGruConfig::from(burn.clone()));
    let burn = nn::SwiGluConfig::new(3, 5);
    same(&burn, &int8::SwiGluConfig::from(burn.clone()));
    let burn = nn::transformer::TransformerEncoderConfig::new(8, 16, 2, 1);
    same(
        &burn,
        &int8::transformer::TransformerEncoderConfig::from(burn.clone()),
    );
    let burn = nn::attention::MultiHeadAttentionConfig::new(8, 2);
    same(
        &burn,
        &int8::attention::MultiHeadAttentionConfig::from(burn.clone()),
    );
    let burn = nn::pool::MaxPool2dConfig::new([2, 2])
        .with_strides([1, 2])
        .with_ceil_mode(true);
    same(&burn, &int8::pool::MaxPool2dConfig::from(burn.clone()));
    let burn = nn::pool::MaxPool1dConfig::new(3).with_stride(2);
    same(&burn, &int8::pool::MaxPool1dConfig::from(burn.clone()));
    // Burn's modules that are not replaced are Burn's own, under Burn's paths.
    let _: int8::pool::AvgPool2d = nn::pool::AvgPool2dConfig::new([2, 2]).init();
    let _: int8::loss::CrossEntropyLoss<B> =
        int8::loss::CrossEntropyLossConfig::new().init(&Default::default());
    let _: int8::Dropout = nn::DropoutConfig::new(0.1).init();
    let _: int8::LayerNorm<B> = int8::LayerNormConfig::new(4).init(&Default::default());
    let _: int8::conv::ConvTranspose2d<B> =
        int8::conv::ConvTranspose2dConfig::new([2, 2], [3, 3]).init(&Default::default());
}

/// Float records written while the swappable layers were enums (`dense.Float.weight`) still
/// load with `burn_int8::store::load`; int8 ones never changed names.
#[test]
fn records_written_before_burn_names_still_load() {
    use burn::nn;
    use burn_int8::QuantizedLinear;

    /// The old swappable layer, as Burn's enum derive recorded it.
    #[derive(Module, Debug)]
    enum OldLinear<B: Backend> {
        Float(nn::Linear<B>),
        Int8(QuantizedLinear<B>),
    }
    #[derive(Module, Debug)]
    struct Old<B: Backend> {
        dense: OldLinear<B>,
    }
    #[derive(Module, Debug, Quantize)]
    struct New<B: Backend> {
        dense: burn_int8::nn::Linear<B>,
    }

    let device = Default::default();
    let dir = temp_dir("legacy");
    let float = nn::LinearConfig::new(6, 4).init::<B>(&device);
    let input = Tensor::<B, 2>::random([3, 6], Distribution::Default, &device);
    let expected = float.forward(input.clone()).into_data();
    let int8 = QuantizedLinear::from_float(&float).unwrap();
    let int8_expected = int8.forward(input.clone()).into_data();
    let fresh = || New::<B> {
        dense: burn_int8::nn::LinearConfig::new(6, 4).init(&device),
    };

    store::save(
        &Old {
            dense: OldLinear::Float(float),
        },
        dir.join("float.bpk"),
    )
    .unwrap();
    let mut model = fresh();
    store::load(&mut model, dir.join("float.bpk")).unwrap();
    assert_eq!(model.dense.forward(input.clone()).into_data(), expected);

    store::save(
        &Old {
            dense: OldLinear::Int8(int8),
        },
        dir.join("int8.bpk"),
    )
    .unwrap();
    let mut model = fresh();
    model.quantize_int8().unwrap();
    store::load(&mut model, dir.join("int8.bpk")).unwrap();
    assert_eq!(model.dense.forward(input).into_data(), int8_expected);
    std::fs::remove_dir_all(&dir).ok();
}
