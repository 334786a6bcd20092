//! The workspace's shared test helpers, one crate instead of files included by path: the real
//! Gemma3 checkpoint's location ([`checkpoint`]), the Keras fixture reader, the backend loops
//! (`for_each_backend!`), and small tensor assertions.

pub mod checkpoint;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use safetensors::{Dtype, SafeTensors};

/// Runs `$body::<Backend>(&device)` on every compiled CPU backend, then on the GPU backends
/// ([`for_each_gpu_backend`]). `BURN_INT8_TEST_BACKENDS=cuda,flex` runs only those (a machine
/// with a GPU but no lavapipe, say); unset, every compiled backend runs.
#[macro_export]
macro_rules! for_each_backend {
    ($body:ident) => {{
        #[cfg(feature = "ndarray")]
        if $crate::backend_selected("ndarray") {
            eprintln!("-- ndarray");
            $body::<burn::backend::NdArray>(&Default::default());
        }
        #[cfg(feature = "flex")]
        if $crate::backend_selected("flex") {
            eprintln!("-- flex");
            $body::<burn::backend::Flex>(&Default::default());
        }
        $crate::for_each_gpu_backend!($body);
    }};
}

/// Runs `$body::<Backend>(&device)` on wgpu (Mesa lavapipe through Vulkan, the CPU device, so
/// it runs on any machine) when the `wgpu` feature is on, and on CUDA's first device when the
/// `cuda` feature is on.
#[macro_export]
macro_rules! for_each_gpu_backend {
    ($body:ident) => {{
        #[cfg(feature = "wgpu")]
        if $crate::backend_selected("wgpu") {
            eprintln!("-- wgpu (vulkan)");
            $body::<burn::backend::Vulkan>(&burn::backend::wgpu::WgpuDevice::Cpu);
        }
        #[cfg(feature = "cuda")]
        if $crate::backend_selected("cuda") {
            eprintln!("-- cuda");
            $body::<burn::backend::Cuda>(&Default::default());
        }
    }};
}

/// The backend names `BURN_INT8_TEST_BACKENDS` may list.
pub const BACKENDS: [&str; 4] = ["ndarray", "flex", "wgpu", "cuda"];

/// Whether `BURN_INT8_TEST_BACKENDS` (a comma-separated list; unset means all) names `backend`.
///
/// # Panics
/// When the list names a backend that does not exist (a typo would otherwise make every
/// backend loop run nothing and pass).
pub fn backend_selected(backend: &str) -> bool {
    match std::env::var("BURN_INT8_TEST_BACKENDS") {
        Ok(list) => selected_in(&list, backend).unwrap_or_else(|unknown| {
            panic!(
                "BURN_INT8_TEST_BACKENDS={list:?} names {unknown:?}, which is not one of {BACKENDS:?}"
            )
        }),
        Err(_) => true,
    }
}

/// Whether the comma-separated `list` names `backend`; `Err(name)` for the first name in it
/// that is not a backend.
pub fn selected_in(list: &str, backend: &str) -> Result<bool, String> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(unknown) = names.iter().find(|name| !BACKENDS.contains(name)) {
        return Err((*unknown).to_string());
    }
    Ok(names.contains(&backend))
}

/// The Keras layer fixture: `tests/fixtures/keras-int8-layers.safetensors`, or the file named
/// by `KERAS_INT8_FIXTURE`.
pub struct Fixture {
    bytes: Vec<u8>,
}

/// `tests/fixtures` of the crate whose tests run: cargo sets `CARGO_MANIFEST_DIR` when it runs
/// them (at run time, so a test binary reused from another checkout of the workspace, through a
/// shared target dir, still reads this checkout's fixtures).
///
/// # Panics
/// When `CARGO_MANIFEST_DIR` is unset (a test binary started by hand: set it to the crate).
pub fn fixtures_dir() -> std::path::PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .expect("CARGO_MANIFEST_DIR is unset: run the tests through cargo, or set it to the crate");
    std::path::PathBuf::from(manifest_dir).join("tests/fixtures")
}

impl Fixture {
    pub fn load() -> Self {
        let path = std::env::var("KERAS_INT8_FIXTURE").unwrap_or_else(|_| {
            fixtures_dir()
                .join("keras-int8-layers.safetensors")
                .to_string_lossy()
                .into_owned()
        });
        Self::open(&path)
    }

    /// A safetensors fixture under `tests/fixtures/` (or an absolute path).
    pub fn open(path: &str) -> Self {
        let path = fixtures_dir().join(path);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
        Self { bytes }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("fixture is a safetensors file")
    }

    /// Case names that have a tensor `<case>.<suffix>`.
    pub fn cases_with(&self, suffix: &str) -> Vec<String> {
        let mut cases: Vec<String> = self
            .tensors()
            .names()
            .into_iter()
            .filter_map(|name| name.strip_suffix(&format!(".{suffix}")).map(str::to_string))
            .collect();
        cases.sort();
        cases
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors().tensor(name).is_ok()
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.tensors()
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture lacks {name}"))
            .shape()
            .to_vec()
    }

    pub fn f32_values(&self, name: &str) -> Vec<f32> {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture lacks {name}"));
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        view.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    pub fn i8_values(&self, name: &str) -> Vec<i8> {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture lacks {name}"));
        assert_eq!(view.dtype(), Dtype::I8, "{name}");
        view.data().iter().map(|&b| b as i8).collect()
    }

    pub fn i32_values(&self, name: &str) -> Vec<i32> {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture lacks {name}"));
        assert_eq!(view.dtype(), Dtype::I32, "{name}");
        view.data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    pub fn float<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Tensor<B, D> {
        Tensor::from_data(
            TensorData::new(self.f32_values(name), self.shape(name)),
            device,
        )
    }

    pub fn ids<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Tensor<B, D, Int> {
        let ids: Vec<i64> = self.i32_values(name).into_iter().map(i64::from).collect();
        Tensor::from_data(TensorData::new(ids, self.shape(name)), device)
    }
}

pub fn f32_of<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
}

pub fn i8_of<B: Backend, const D: usize>(tensor: Tensor<B, D, Int>) -> Vec<i8> {
    let data = tensor.into_data();
    assert_eq!(
        data.dtype,
        burn::tensor::DType::I8,
        "int8 weights must be stored as I8"
    );
    data.to_vec::<i8>().expect("i8 data")
}

/// Asserts `|actual - expected| <= rel * |expected| + abs` element-wise.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], rel: f32, abs: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= rel * e.abs() + abs,
            "{what}[{i}]: got {a}, Keras {e} (|diff| {} > {})",
            (a - e).abs(),
            rel * e.abs() + abs
        );
    }
}

/// Asserts two f32 slices are equal to within 1 ulp.
pub fn assert_within_one_ulp(what: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let ulps = (a.to_bits() as i64 - e.to_bits() as i64).abs();
        assert!(
            ulps <= 1,
            "{what}[{i}]: got {a}, Keras {e} ({ulps} ulp apart)"
        );
    }
}

/// Index of the largest value (the first one on ties, like greedy decoding).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

/// Burn initialises parameters lazily, on first read, and a clone of a lazy parameter draws its
/// own values: read every parameter (in visit order) before cloning or comparing.
pub fn materialized<B: Backend, M: burn::module::Module<B>>(module: M) -> M {
    /// Reads every parameter, in visit order.
    struct ReadAll;
    impl<B: Backend> burn::module::ModuleVisitor<B> for ReadAll {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D, Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(
            &mut self,
            param: &burn::module::Param<Tensor<B, D, burn::tensor::Bool>>,
        ) {
            let _ = param.val();
        }
    }
    module.visit(&mut ReadAll);
    module
}

/// The CPU backends' random generators are process-wide, and every test module is compiled into
/// one binary: tests that seed and draw hold this one lock, so two of them never interleave.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// For tests that seed, build Burn's module and ours, and compare outputs: a test elsewhere in the
/// binary that draws without [`rng_lock`] (any `Config::init`) can land between a seed and the
/// init it is meant for. Re-runs `attempt` until one attempt is uninterrupted (at most 8 times).
/// A wrong init never matches bit for bit, so the retries cannot pass one.
pub fn equal_on_some_attempt(what: &str, mut attempt: impl FnMut() -> (Vec<f32>, Vec<f32>)) {
    let (mut ours, mut expected) = attempt();
    for _ in 1..8 {
        if ours == expected {
            return;
        }
        (ours, expected) = attempt();
    }
    assert_eq!(ours, expected, "{what}");
}

/// The crates in `package`'s normal dependency graph as `cargo tree --offline` resolves it,
/// with `args` added (features, depth): what a crate depending on `package` alone would pull in.
///
/// # Panics
/// When `cargo tree` cannot run or fails (the test that asked cannot check anything then).
pub fn normal_dependencies(package: &str, args: &[&str]) -> std::collections::BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Any directory of the workspace will do: `--package` picks the crate.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let output = std::process::Command::new(cargo)
        .current_dir(&manifest_dir)
        .args([
            "tree",
            "--offline",
            "--package",
            package,
            "--edges",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::selected_in;

    #[test]
    fn a_typo_in_the_backend_list_is_an_error() {
        assert_eq!(selected_in("flex,cuda", "cuda"), Ok(true));
        assert_eq!(selected_in("flex, cuda", "ndarray"), Ok(false));
        assert_eq!(selected_in("flex,cdua", "flex"), Err("cdua".to_string()));
        assert_eq!(selected_in("", "flex"), Ok(false));
    }
}
