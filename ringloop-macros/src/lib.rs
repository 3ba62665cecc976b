//! `#[ringloop::main]` and `#[ringloop::test]`: an `async fn` run to completion on a fresh
//! ringloop event loop. Use them through `ringloop` (feature `macros`), not this crate.
//!
//! Both take `engine = "uring" | "epoll" | "auto"` (default: the `RINGLOOP_ENGINE`
//! environment variable, else `auto`). The function's return value is the program's (or
//! the test's): `main` may return `Result<(), E>` as a plain `main` does. A loop that cannot
//! be built (io_uring refused with `engine = "uring"`) ends `main` with the error on stderr
//! and exit code 1, and fails a test with a panic that says so.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, Token};

/// Runs `async fn main` on a ringloop event loop.
///
/// ```ignore
/// #[ringloop::main]
/// async fn main() -> Result<(), ringloop::Error> {
///     ringloop::sleep(std::time::Duration::from_millis(10)).await;
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Main).unwrap_or_else(|e| e.to_compile_error().into())
}

/// Runs an `async fn` test on a fresh ringloop event loop (`#[test]` is added).
///
/// ```ignore
/// #[ringloop::test(engine = "epoll")]
/// async fn sleeps() {
///     ringloop::sleep(std::time::Duration::from_millis(1)).await;
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Test).unwrap_or_else(|e| e.to_compile_error().into())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

fn engine_arg(args: TokenStream) -> syn::Result<Option<proc_macro2::TokenStream>> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse(args)?;
    let mut engine = None;
    for meta in metas {
        let Meta::NameValue(nv) = &meta else {
            return Err(syn::Error::new_spanned(
                meta,
                "expected `engine = \"uring\" | \"epoll\" | \"auto\"`",
            ));
        };
        if !nv.path.is_ident("engine") {
            return Err(syn::Error::new_spanned(
                &nv.path,
                "unknown option (the only one is `engine`)",
            ));
        }
        let Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) = &nv.value
        else {
            return Err(syn::Error::new_spanned(
                &nv.value,
                "`engine` takes a string: \"uring\", \"epoll\" or \"auto\"",
            ));
        };
        let variant = match s.value().as_str() {
            "uring" => quote!(Uring),
            "epoll" => quote!(Epoll),
            "auto" => quote!(Auto),
            other => {
                return Err(syn::Error::new_spanned(
                    s,
                    format!("unknown engine {other:?}: \"uring\", \"epoll\" or \"auto\""),
                ));
            }
        };
        if engine.replace(variant).is_some() {
            return Err(syn::Error::new_spanned(meta, "`engine` given twice"));
        }
    }
    Ok(engine)
}

fn expand(args: TokenStream, item: TokenStream, kind: Kind) -> syn::Result<TokenStream> {
    let engine = engine_arg(args)?;
    let mut f: ItemFn = syn::parse(item)?;
    let what = if kind == Kind::Main {
        "#[ringloop::main]"
    } else {
        "#[ringloop::test]"
    };
    if f.sig.asyncness.take().is_none() {
        return Err(syn::Error::new_spanned(
            f.sig.fn_token,
            format!("{what} needs an `async fn`"),
        ));
    }
    if kind == Kind::Main && f.sig.ident != "main" {
        return Err(syn::Error::new_spanned(
            &f.sig.ident,
            "#[ringloop::main] goes on `fn main`",
        ));
    }
    if !f.sig.inputs.is_empty() || !f.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &f.sig,
            format!("{what} takes a function without arguments or generics"),
        ));
    }
    let builder = match engine {
        Some(v) => quote!(::ringloop::LoopBuilder::default().engine(::ringloop::Engine::#v)),
        None => quote!(::ringloop::LoopBuilder::default()),
    };
    let body = &f.block;
    let ret = match &f.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, t) => quote!(#t),
    };
    let on_error = match kind {
        Kind::Main => quote! {
            ::std::eprintln!("{}: {}", ::std::env::args().next().unwrap_or_default(), e);
            ::std::process::exit(1)
        },
        Kind::Test => quote!(::std::panic!("the test's event loop failed: {}", e)),
    };
    let run = quote! {
        match #builder.run(async move #body) {
            ::std::result::Result::Ok(v) => v,
            ::std::result::Result::Err(e) => { #on_error }
        }
    };
    let span = Span::call_site();
    *f.block = syn::parse2(quote::quote_spanned!(span=> {
        let __ringloop_out: #ret = #run;
        __ringloop_out
    }))?;
    let test_attr = if kind == Kind::Test {
        quote!(#[::core::prelude::v1::test])
    } else {
        quote!()
    };
    Ok(quote!(#test_attr #f).into())
}
