//! Writing a block into a tensor in place, for a KV cache's append.
//!
//! burn-flex 0.21's `slice_assign` keeps its own handle on the destination while it writes
//! (`to_contiguous` of a dense tensor is a clone), so the write always finds the buffer shared
//! and copies all of it first: a decode step copied every layer's whole cache to append one key.
//! Here a uniquely owned, dense f32 flex buffer is written directly; anything else (shared,
//! strided, another backend or dtype) is handed back for Burn's `slice_assign`.

use std::ops::Range;

use burn::tensor::{Tensor, TensorPrimitive, backend::Backend};

use super::host_f32;
#[cfg(feature = "flex")]
use crate::kernels::backend::same_type_mut;

/// Writes `value` into `buffer[ranges]` in place, or hands `buffer` back untouched (`Err`) when
/// it cannot: not flex, not dense f32, shared with another handle, or ranges that do not fit.
pub fn try_write_in_place<B: Backend, const D: usize>(
    buffer: Tensor<B, D>,
    ranges: &[Range<usize>; D],
    value: &Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let dims = buffer.dims();
    let value_dims = value.dims();
    let fits = (0..D).all(|i| {
        ranges[i].start <= ranges[i].end
            && ranges[i].end <= dims[i]
            && ranges[i].len() == value_dims[i]
    });
    if !fits || D == 0 {
        return Err(buffer);
    }
    if value_dims.contains(&0) {
        return Ok(buffer);
    }
    let Some(source) = host_f32(value) else {
        return Err(buffer);
    };
    let mut primitive = match buffer.into_primitive() {
        TensorPrimitive::Float(primitive) => primitive,
        other => return Err(Tensor::from_primitive(other)),
    };
    let written = write_flex::<B>(
        &mut primitive,
        &dims,
        ranges,
        source.as_slice(),
        &source.strides,
    );
    let buffer = Tensor::from_primitive(TensorPrimitive::Float(primitive));
    if written { Ok(buffer) } else { Err(buffer) }
}

/// The flex case of [`try_write_in_place`]: whether it wrote.
fn write_flex<B: Backend>(
    primitive: &mut B::FloatTensorPrimitive,
    dims: &[usize],
    ranges: &[Range<usize>],
    source: &[f32],
    source_strides: &[isize],
) -> bool {
    #[cfg(feature = "flex")]
    if let Some(tensor) = same_type_mut::<_, burn_flex::FlexTensor>(primitive) {
        let elements: usize = dims.iter().product();
        let dense = tensor.dtype() == burn::tensor::DType::F32
            && tensor.is_contiguous()
            && tensor.layout().start_offset() == 0
            && tensor.bytes().len() == elements * size_of::<f32>();
        if !dense {
            return false;
        }
        // `None` when another handle shares the buffer: it must keep its values.
        let Some(destination) = tensor.try_storage_mut::<f32>() else {
            return false;
        };
        copy_block(destination, dims, ranges, source, source_strides);
        return true;
    }
    let _ = (primitive, dims, ranges, source, source_strides);
    false
}

/// Copies `source` (the block's elements at `source_strides`, from its first element) into the
/// row-major `destination` of shape `dims` at `ranges`, one innermost run at a time.
#[cfg(feature = "flex")]
fn copy_block(
    destination: &mut [f32],
    dims: &[usize],
    ranges: &[Range<usize>],
    source: &[f32],
    source_strides: &[isize],
) {
    let rank = dims.len();
    let mut strides = vec![1usize; rank];
    for axis in (0..rank - 1).rev() {
        strides[axis] = strides[axis + 1] * dims[axis + 1];
    }
    let run = ranges[rank - 1].len();
    let inner_stride = source_strides[rank - 1] as usize;
    let outer: usize = ranges[..rank - 1].iter().map(Range::len).product();
    let mut index = vec![0usize; rank - 1];
    for _ in 0..outer {
        let mut to = ranges[rank - 1].start;
        let mut from = 0;
        for axis in 0..rank - 1 {
            to += (ranges[axis].start + index[axis]) * strides[axis];
            from += index[axis] * source_strides[axis] as usize;
        }
        let target = &mut destination[to..to + run];
        if inner_stride == 1 {
            target.copy_from_slice(&source[from..from + run]);
        } else {
            for (j, y) in target.iter_mut().enumerate() {
                *y = source[from + j * inner_stride];
            }
        }
        for axis in (0..rank - 1).rev() {
            index[axis] += 1;
            if index[axis] < ranges[axis].len() {
                break;
            }
            index[axis] = 0;
        }
    }
}
