//! What `#[derive(Quantize)]` expands to for one field (not public API).
//!
//! A field whose type implements [`Quantize`] is visited through it; any other module (a
//! `burn::nn` module such as `MultiHeadAttention`, or a user module without the derive) is
//! walked with Burn's `ModuleVisitor`, and the float layers inside are reported. The choice is
//! made at compile time by method resolution ("autoref specialization"): `(&field).visit(..)`
//! finds [`ViaQuantize`] on `Field` first, and only when the type has no `Quantize` impl does
//! it take [`ViaModule`] on `&Field`.

use std::cell::RefCell;
use std::marker::PhantomData;

use burn::module::Module;
use burn::tensor::backend::Backend;

use crate::{Int8Error, Quantize, QuantizeContext};

pub struct Field<'a, B, T>(RefCell<&'a mut T>, PhantomData<B>);

impl<'a, B, T> Field<'a, B, T> {
    pub fn new(value: &'a mut T) -> Self {
        Self(RefCell::new(value), PhantomData)
    }
}

pub trait ViaQuantize {
    fn visit(&self, name: &str, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error>;
}

impl<B: Backend, T: Quantize<B>> ViaQuantize for Field<'_, B, T> {
    fn visit(&self, name: &str, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
        ctx.visit_child::<B, T>(name, &mut **self.0.borrow_mut())
    }
}

pub trait ViaModule {
    fn visit(&self, name: &str, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error>;
}

impl<B: Backend, T: Module<B>> ViaModule for &Field<'_, B, T> {
    fn visit(&self, name: &str, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
        ctx.visit_unquantizable::<B, T>(name, &**self.0.borrow());
        Ok(())
    }
}
