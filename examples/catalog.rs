//! A product catalog: product records in Cosmos DB, product images in Blob
//! Storage, and a product page read that returns the record and a
//! time-limited image URL in one call.
//!
//! ```text
//! scripts/emulators/start
//! cargo run --features cosmos,azblob --example catalog [-- path/to/catalog.toml]
//! ```
//!
//! Configured by `examples/catalog.toml` (the local emulators by default).
//! The product page is an aggregate read: the record from Cosmos DB and,
//! concurrently, a check that the image exists plus a read-only signed URL
//! (SAS) for it, valid for 10 minutes — the browser then fetches the image
//! from Blob Storage directly, without the application proxying its bytes.
//! If the emulators are not running it says so and exits 2. Safe to run
//! repeatedly: it replaces its own products and images.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use polyrouter::config::Config;
use polyrouter::prelude::*;
use polyrouter::store::blob::PutOptions;
use serde::{Deserialize, Serialize};

/// How long a product page's image URL works.
const IMAGE_URL_TTL: Duration = Duration::from_secs(600);

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "product", key = "sku")]
struct Product {
    sku: String,
    name: String,
    category: String,
    price_cents: i64,
    /// The blob holding the product's picture (see [`image_key`]); deleting
    /// the product deletes it (`cascade_blobs` in the TOML).
    image_key: String,
    /// Free-form attributes: what a document store is good at.
    attributes: serde_json::Value,
    #[entity(version)]
    version: u64,
}

/// What a product page needs: the record, and a URL the browser can load the
/// image from (`None` when the product has no image, or it could not be
/// signed in time — the page renders without it).
#[derive(Debug)]
struct ProductPage {
    product: Product,
    image_url: Option<String>,
}

/// Where a product's image lives. A fixed naming rule lets the page read
/// sign the URL while the record is still being fetched.
fn image_key(sku: &str) -> String {
    format!("products/{sku}.svg")
}

/// The product page read: one call for the caller. The record (Cosmos DB)
/// and the image URL (a `head` on Blob Storage, then a local signature)
/// run concurrently as two branches of one aggregate read, under one
/// deadline; the image branch is optional, so a slow or failing image
/// store still yields the page, without an image.
async fn product_page(router: &Router, sku: &str) -> polyrouter::Result<Option<ProductPage>> {
    let images = router.clone();
    let key = image_key(sku);
    let out = router
        .aggregate()
        .get::<Product>("product", sku)
        .required()
        .branch("image_url", "images", async move {
            let blobs = images.blobs("images")?;
            match blobs.head(&key).await? {
                Some(_) => Ok(Some(blobs.signed_url(&key, IMAGE_URL_TTL).await?)),
                None => Ok(None),
            }
        })
        .deadline(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .run()
        .await?;
    let Some(product) = out.value::<Option<Product>>("product")? else {
        return Ok(None);
    };
    let image_url = match out.value::<Option<String>>("image_url") {
        Ok(url) => url,
        Err(e) => {
            eprintln!("  (no image for {sku}: {e})");
            None
        }
    };
    Ok(Some(ProductPage { product, image_url }))
}

/// A small SVG picture of a product.
fn picture(name: &str, colour: &str) -> Vec<u8> {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120"><rect width="160" height="120" fill="{colour}"/><text x="80" y="66" font-size="20" text-anchor="middle" fill="#fff">{name}</text></svg>"##
    )
    .into_bytes()
}

/// Fetches a URL as a browser would: no SDK, no credentials — only what
/// the URL carries. Plain `http://` (the emulator) over a TCP socket;
/// `None` for `https://` (a real account: open the URL in a browser).
async fn fetch(url: &str) -> std::io::Result<Option<(u16, Vec<u8>)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return Ok(None);
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn = tokio::net::TcpStream::connect(host).await?;
    // HTTP/1.0: the answer is never chunked; the server closes at the end.
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP headers in the answer"))?;
    let status = String::from_utf8_lossy(&answer[..end])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Some((status, answer[end + 4..].to_vec())))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/catalog.toml"));
    let built = Router::builder()
        .config(Config::from_file(&file)?)
        .entity::<Product>()
        .build()
        .await;
    let router = match built {
        Ok(r) => r,
        // Unreachable stores are `Unavailable`: the emulators are not up.
        Err(e) if e.is_transient() => {
            eprintln!("start the emulators first: scripts/emulators/start");
            eprintln!("  ({e})");
            std::process::exit(2);
        }
        Err(e) => return Err(e.into()),
    };
    let products = router.repo::<Product>().await?;
    let images = router.blobs("images")?;

    // Seed: four products, three with a picture.
    let seed = [
        ("lamp-01", "Desk lamp", "lighting", 3_450, Some("#c8842a")),
        (
            "chair-07",
            "Oak chair",
            "furniture",
            12_900,
            Some("#7a5230"),
        ),
        ("mug-03", "Tea mug", "kitchen", 1_200, Some("#2a6fc8")),
        ("rug-11", "Wool rug", "furniture", 8_900, None),
    ];
    for (sku, name, category, price_cents, colour) in seed {
        if let Some(colour) = colour {
            images
                .put_bytes(
                    &image_key(sku),
                    picture(name, colour),
                    PutOptions::new().content_type("image/svg+xml"),
                )
                .await?;
        } else {
            images.delete(&image_key(sku)).await?;
        }
        products
            .put(&Product {
                sku: sku.into(),
                name: name.into(),
                category: category.into(),
                price_cents,
                image_key: image_key(sku),
                attributes: serde_json::json!({ "colour": colour.unwrap_or("natural") }),
                version: 0,
            })
            .await?;
    }
    println!(
        "seeded {} products in {} and their images in {}",
        seed.len(),
        router
            .store("catalog")
            .map(|s| s.location())
            .unwrap_or_default(),
        router
            .store("images")
            .map(|s| s.location())
            .unwrap_or_default(),
    );

    // The product page: record + signed image URL, one call.
    let page = product_page(&router, "lamp-01")
        .await?
        .ok_or("lamp-01 was just stored")?;
    let p = &page.product;
    println!(
        "\nproduct page {}: {} ({}), {}.{:02} EUR, version {}, attributes {}",
        p.sku,
        p.name,
        p.category,
        p.price_cents / 100,
        p.price_cents % 100,
        p.version,
        p.attributes
    );
    let url = page.image_url.ok_or("lamp-01 has an image")?;
    println!("  image (read-only, valid {IMAGE_URL_TTL:?}): {url}");

    // Prove the URL works on its own: fetch it with no credentials.
    match fetch(&url).await? {
        Some((200, body)) if body == picture("Desk lamp", "#c8842a") => {
            println!(
                "  fetched {} bytes over plain HTTP: the stored picture",
                body.len()
            )
        }
        Some((status, body)) => {
            return Err(format!(
                "fetching the signed URL answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        None => println!("  (https URL: open it in a browser)"),
    }
    // The same URL with its signature altered is refused.
    let at = url.find("sig=").ok_or("a SAS URL has a signature")? + 4;
    let mut forged = url.clone();
    let swap = if forged[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    forged.replace_range(at..at + 1, swap);
    if let Some((status, _)) = fetch(&forged).await? {
        println!("  the same URL with a forged signature: HTTP {status}");
        if status != 403 {
            return Err("a forged signature was accepted".into());
        }
    }

    // A product without a picture, and one that does not exist.
    let rug = product_page(&router, "rug-11")
        .await?
        .ok_or("rug-11 was just stored")?;
    println!(
        "\nproduct page {}: {}, image {:?}",
        rug.product.sku, rug.product.name, rug.image_url
    );
    println!(
        "product page nope-00: {:?}",
        product_page(&router, "nope-00")
            .await?
            .map(|p| p.product.sku)
    );

    // Discontinue a product: its picture goes with it (cascade_blobs).
    products.delete("mug-03").await?;
    println!(
        "\ndeleted mug-03: record {}, picture {}",
        if products.get("mug-03").await?.is_none() {
            "gone"
        } else {
            "still there"
        },
        if images.head(&image_key("mug-03")).await?.is_none() {
            "gone"
        } else {
            "still there"
        },
    );
    Ok(())
}
