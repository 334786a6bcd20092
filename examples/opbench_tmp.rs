use std::time::Instant;
use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
fn t(name: &str, mut f: impl FnMut()) { f(); let s=Instant::now(); for _ in 0..50 { f(); } println!("{name}: {:.3} ms", s.elapsed().as_secs_f64()*1e3/50.0); }
fn main() {
    let d = Default::default();
    let x = Tensor::<Flex,4>::random([1,64,112,112], Distribution::Normal(0.,1.), &d);
    let y = Tensor::<Flex,4>::random([1,64,56,56], Distribution::Normal(0.,1.), &d);
    t("maxpool", || { max_pool2d(x.clone(), [3,3],[2,2],[1,1],[1,1], false).into_data(); });
    t("relu112", || { relu(x.clone()).into_data(); });
    t("add56", || { (y.clone()+y.clone()).into_data(); });
    t("relu56", || { relu(y.clone()).into_data(); });
    let z = Tensor::<Flex,4>::random([1,512,7,7], Distribution::Normal(0.,1.), &d);
    t("avgpool", || { burn::tensor::module::adaptive_avg_pool2d(z.clone(), [1,1]).into_data(); });
}
