//! Saving and reloading: int8 stays 1 byte on disk, reloads are exact, bad records are typed
//! errors that leave the model and existing files intact.

use crate::common;

use burn::module::Module;
use burn::nn::{LinearConfig, Relu};
use burn::tensor::{Distribution, Tensor, backend::Backend};
use burn_int8::{Int8Error, Linear, Quantize, QuantizeExt, mse, store};
use ciborium::Value;
use common::f32_of;

#[derive(Module, Debug, Quantize)]
struct Mlp<B: Backend> {
    dense1: Linear<B>,
    dense2: Linear<B>,
    activation: Relu,
}

impl<B: Backend> Mlp<B> {
    fn new(d_in: usize, d_hidden: usize, d_out: usize, device: &B::Device) -> Self {
        Self {
            dense1: Linear::new(&LinearConfig::new(d_in, d_hidden), device),
            dense2: Linear::new(&LinearConfig::new(d_hidden, d_out), device),
            activation: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.dense2
            .forward(self.activation.forward(self.dense1.forward(x)))
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-int8-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn save_reload_is_exact<B: Backend>(device: &B::Device) {
    let dir = temp_dir(&format!(
        "exact-{}",
        B::name(device).replace(['/', ' ', '<', '>'], "_")
    ));
    let mut model = Mlp::<B>::new(10, 32, 1, device);
    model.quantize_int8().unwrap();
    let x = Tensor::<B, 2>::random([32, 10], Distribution::Normal(0.0, 1.0), device);
    let y = model.forward(x.clone());

    let path = dir.join("mlp-int8.bpk");
    store::save(&model, &path).unwrap();
    // A freshly built model, quantized (as Keras does before loading), then loaded.
    let mut reloaded = Mlp::<B>::new(10, 32, 1, device);
    reloaded.quantize_int8().unwrap();
    store::load(&mut reloaded, &path).unwrap();
    let y_reloaded = reloaded.forward(x);
    assert_eq!(mse(y.clone(), y_reloaded.clone()), 0.0);
    assert_eq!(f32_of(y), f32_of(y_reloaded));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn save_and_reload_reproduce_outputs_exactly() {
    for_each_backend!(save_reload_is_exact);
}

/// Quantizing lays a linear weight out channel-major (`[out, in]` bytes seen as `[in, out]`:
/// strides `[1, in]`, what the CPU decode kernels stream best). A record holds the logical
/// tensor row-major; the weight's own load mapper re-lays it, so a reloaded layer is laid out
/// as the saved one. Checked on the backend's own strides, values unchanged.
#[cfg(feature = "flex")]
#[test]
fn reloaded_linear_weights_keep_their_channel_major_layout() {
    use burn::backend::Flex;
    let device = Default::default();
    let strides = |linear: &Linear<Flex>| {
        let weight = linear.int8_weight().expect("not quantized");
        weight
            .values
            .val()
            .into_primitive()
            .layout()
            .strides()
            .to_vec()
    };
    let values = |linear: &Linear<Flex>| {
        let weight = linear.int8_weight().expect("not quantized");
        weight.values.val().into_data().to_vec::<i8>().unwrap()
    };
    let mut model = Mlp::<Flex>::new(10, 32, 3, &device);
    model.quantize_int8().unwrap();
    assert_eq!(strides(&model.dense1), [1, 10]);
    let dir = temp_dir("layout");
    let path = dir.join("mlp.bpk");
    store::save(&model, &path).unwrap();
    let mut reloaded = Mlp::<Flex>::new(10, 32, 3, &device);
    reloaded.quantize_int8().unwrap();
    store::load(&mut reloaded, &path).unwrap();
    for (saved, loaded) in [
        (&model.dense1, &reloaded.dense1),
        (&model.dense2, &reloaded.dense2),
    ] {
        assert_eq!(strides(loaded), strides(saved));
        assert_eq!(values(loaded), values(saved));
    }
    assert_eq!(strides(&reloaded.dense2), [1, 32]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn int8_file_is_at_most_027_of_float_file() {
    type B = burn::backend::NdArray;
    let device = Default::default();
    let dir = temp_dir("size");
    // 1024·1024 + 1024·256 weights: over 1M parameters.
    let mut model = Mlp::<B>::new(1024, 1024, 256, &device);
    let float_bytes = store::save(&model, dir.join("float.bpk")).unwrap();
    let report = model.quantize_int8().unwrap();
    let int8_bytes = store::save(&model, dir.join("int8.bpk")).unwrap();
    let ratio = int8_bytes as f64 / float_bytes as f64;
    eprintln!("float {float_bytes} B, int8 {int8_bytes} B, ratio {ratio:.4}; params {report}");
    assert!(ratio <= 0.27, "int8/float file ratio {ratio}");
    // On disk as in memory: about one byte per weight.
    assert!(int8_bytes as usize <= report.bytes_after + 4096);
    // The report's counts, from the shapes (not from `param_bytes`, which made them): float
    // d_in x d_out with bias is 4·(d_in·d_out + d_out) bytes; int8 is an i8 weight, an f32
    // scale per output and the f32 bias.
    let float_linear = |d_in: usize, d_out: usize| 4 * (d_in * d_out + d_out);
    let int8_linear = |d_in: usize, d_out: usize| d_in * d_out + 4 * d_out + 4 * d_out;
    assert_eq!(
        report.bytes_before,
        float_linear(1024, 1024) + float_linear(1024, 256),
        "{report}"
    );
    assert_eq!(
        report.bytes_after,
        int8_linear(1024, 1024) + int8_linear(1024, 256),
        "{report}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn precision_mismatches_and_bad_records_are_typed_errors() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let dir = temp_dir("bad");
    let float_model = Mlp::<B>::new(8, 16, 4, &device);
    let mut int8_model = float_model.clone();
    int8_model.quantize_int8().unwrap();
    let (float_path, int8_path) = (dir.join("float.bpk"), dir.join("int8.bpk"));
    store::save(&float_model, &float_path).unwrap();
    store::save(&int8_model, &int8_path).unwrap();

    let x = Tensor::<B, 2>::random([3, 8], Distribution::Default, &device);
    let expected = f32_of(int8_model.forward(x.clone()));

    // int8 record into a float model.
    let mut target = Mlp::<B>::new(8, 16, 4, &device);
    let error = store::load(&mut target, &int8_path).unwrap_err();
    assert!(
        matches!(
            error,
            Int8Error::PrecisionMismatch {
                found: "int8",
                expected: "float",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("quantize"), "{error}");

    // float record into an int8 model: an error, and the model keeps its weights.
    let error = store::load(&mut int8_model, &float_path).unwrap_err();
    assert!(
        matches!(
            error,
            Int8Error::PrecisionMismatch {
                found: "float",
                expected: "int8",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(f32_of(int8_model.forward(x.clone())), expected);

    // A truncated file.
    let bytes = std::fs::read(&int8_path).unwrap();
    let truncated = dir.join("truncated.bpk");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let error = store::load(&mut int8_model, &truncated).unwrap_err();
    assert!(matches!(error, Int8Error::Record { .. }), "{error}");
    assert_eq!(f32_of(int8_model.forward(x.clone())), expected);

    // A foreign file and a missing one.
    let foreign = dir.join("foreign.bpk");
    std::fs::write(&foreign, b"this is not a burnpack record at all, just text").unwrap();
    assert!(matches!(
        store::load(&mut int8_model, &foreign),
        Err(Int8Error::Record { .. })
    ));
    assert!(matches!(
        store::load(&mut int8_model, dir.join("absent.bpk")),
        Err(Int8Error::Io { .. })
    ));

    // A record of another element type: burn-store would hand burn-ndarray BF16 bytes, which
    // it cannot hold (it panics with the module half rebuilt).
    let bf16 = dir.join("bf16.bpk");
    std::fs::write(
        &bf16,
        with_tensor_entry(
            &std::fs::read(&int8_path).unwrap(),
            "dense1.Int8.weight.scale",
            |entry| {
                *field(entry, "dtype") = Value::Text("BF16".into());
            },
        ),
    )
    .unwrap();
    let error = store::load(&mut int8_model, &bf16).unwrap_err();
    assert!(
        matches!(error, Int8Error::Record { .. }) && error.to_string().contains("stored as BF16"),
        "{error}"
    );
    assert_eq!(f32_of(int8_model.forward(x.clone())), expected);

    // A tensor table whose byte range is too short for the tensor's shape: backends build the
    // array from those bytes unchecked, so this must be refused before burn-store reads it.
    let lying = dir.join("lying.bpk");
    std::fs::write(
        &lying,
        with_tensor_entry(
            &std::fs::read(&int8_path).unwrap(),
            "dense1.Int8.weight.values",
            |entry| {
                let Value::Array(offsets) = field(entry, "data_offsets") else {
                    panic!("data_offsets is not a pair")
                };
                let start = u64::try_from(offsets[0].as_integer().unwrap()).unwrap();
                offsets[1] = Value::Integer((start + 4).into());
            },
        ),
    )
    .unwrap();
    let error = store::load(&mut int8_model, &lying).unwrap_err();
    assert!(error.to_string().contains("cannot hold"), "{error}");
    assert_eq!(f32_of(int8_model.forward(x.clone())), expected);

    // A record of another model (other shapes).
    let mut other = Mlp::<B>::new(8, 12, 4, &device);
    other.quantize_int8().unwrap();
    let error = store::load(&mut other, &int8_path).unwrap_err();
    assert!(matches!(error, Int8Error::Record { .. }), "{error}");

    // A failed save (into a missing directory) leaves nothing behind; a good save leaves no
    // temporary file.
    assert!(matches!(
        store::save(&int8_model, dir.join("missing/x.bpk")),
        Err(Int8Error::Record { .. } | Int8Error::Io { .. })
    ));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Saving over an existing file replaces it whole.
    store::save(&int8_model, &float_path).unwrap();
    let mut reloaded = Mlp::<B>::new(8, 16, 4, &device);
    reloaded.quantize_int8().unwrap();
    store::load(&mut reloaded, &float_path).unwrap();
    assert_eq!(f32_of(reloaded.forward(x)), expected);
    std::fs::remove_dir_all(dir).ok();
}

/// The Burnpack `bytes` with the table entry of tensor `name` edited by `edit` (the header is
/// rewritten; the data section stays as it was).
fn with_tensor_entry(bytes: &[u8], name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    const HEADER: usize = 10;
    let metadata_len = u32::from_le_bytes(bytes[6..10].try_into().unwrap()) as usize;
    let data_start = (HEADER + metadata_len).div_ceil(256) * 256;
    let mut metadata: Value = ciborium::from_reader(&bytes[HEADER..HEADER + metadata_len]).unwrap();
    edit(field(field(&mut metadata, "tensors"), name));

    let mut encoded = Vec::new();
    ciborium::into_writer(&metadata, &mut encoded).unwrap();
    let new_start = (HEADER + encoded.len()).div_ceil(256) * 256;
    let mut out = bytes[..6].to_vec();
    out.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    out.extend_from_slice(&encoded);
    out.resize(new_start, 0);
    out.extend_from_slice(&bytes[data_start..]);
    out
}

/// The value under `key` of a CBOR map.
fn field<'a>(map: &'a mut Value, key: &str) -> &'a mut Value {
    let Value::Map(entries) = map else {
        panic!("not a map")
    };
    let entry = entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .unwrap_or_else(|| panic!("no {key}"));
    &mut entry.1
}
