//! `#[derive(Quantize)]`: makes a Burn module quantizable in one call.
//!
//! Every field whose type mentions a generic parameter of the struct (the backend `B`, or a
//! generic sub-module) is visited under its field name; `#[quantize(skip)]` leaves a field out.
//! A field whose type has no `Quantize` impl (any other Burn module) still compiles: its float
//! layers are found with Burn's `ModuleVisitor` and reported as staying float, with the fix.
//! The generated code names `::burn_int8`, the facade crate.

use proc_macro::TokenStream;
use proc_macro2::{TokenStream as TokenStream2, TokenTree};
use quote::quote;
use syn::{Data, DeriveInput, Fields, GenericParam, parse_macro_input};

#[proc_macro_derive(Quantize, attributes(quantize))]
pub fn derive_quantize(input: TokenStream) -> TokenStream {
    let ast = parse_macro_input!(input as DeriveInput);
    match expand(&ast) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(ast: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &ast.ident;
    let type_params: Vec<syn::Ident> = ast
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.clone()),
            _ => None,
        })
        .collect();
    if !type_params.iter().any(|p| p == "B") {
        return Err(syn::Error::new_spanned(
            name,
            "#[derive(Quantize)] needs the backend generic `B: Backend`",
        ));
    }
    let Data::Struct(data) = &ast.data else {
        return Err(syn::Error::new_spanned(
            name,
            "#[derive(Quantize)] supports structs only",
        ));
    };

    let mut visits = Vec::new();
    let fields: Vec<(&syn::Field, TokenStream2, String)> = match &data.fields {
        Fields::Named(named) => named
            .named
            .iter()
            .map(|f| {
                let ident = f.ident.clone().expect("named field");
                (f, quote!(#ident), ident.to_string())
            })
            .collect(),
        Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let index = syn::Index::from(i);
                (f, quote!(#index), i.to_string())
            })
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (field, access, label) in fields {
        if is_skipped(field)? || !mentions_any(quote!(#field).into_iter().collect(), &type_params) {
            continue;
        }
        let ty = &field.ty;
        // A type with a `Quantize` impl is visited through it; any other module is walked and
        // its float layers reported (see `burn_int8::__derive`).
        visits.push(quote! {
            {
                #[allow(unused_imports)]
                use ::burn_int8::__derive::{ViaModule as _, ViaQuantize as _};
                (&::burn_int8::__derive::Field::<B, #ty>::new(&mut self.#access)).visit(#label, ctx)?;
            }
        });
    }

    // Generic sub-modules (other than B) must be quantizable themselves.
    let mut generics = ast.generics.clone();
    let where_clause = generics.make_where_clause();
    for param in type_params.iter().filter(|p| *p != "B") {
        where_clause
            .predicates
            .push(syn::parse_quote!(#param: ::burn_int8::Quantize<B>));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::burn_int8::Quantize<B> for #name #ty_generics #where_clause {
            fn visit_quantize(
                &mut self,
                ctx: &mut ::burn_int8::QuantizeContext<'_>,
            ) -> ::core::result::Result<(), ::burn_int8::Int8Error> {
                #(#visits)*
                ::core::result::Result::Ok(())
            }
        }
    })
}

fn is_skipped(field: &syn::Field) -> syn::Result<bool> {
    let mut skipped = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("quantize")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skipped = true;
                Ok(())
            } else {
                Err(meta.error("unknown quantize attribute; expected `skip`"))
            }
        })?;
    }
    Ok(skipped)
}

fn mentions_any(tokens: Vec<TokenTree>, idents: &[syn::Ident]) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => idents.contains(&ident),
        TokenTree::Group(group) => mentions_any(group.stream().into_iter().collect(), idents),
        _ => false,
    })
}
