//! Every way a body can be wrong gets a problem document, never a bare 4xx or a 500.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use reference_app::api::order::CreateOrderRequest;
use reference_app::api::{ApiJson, Problem};
use tower::ServiceExt;

async fn create(ApiJson(body): ApiJson<CreateOrderRequest>) -> Result<StatusCode, Problem> {
    body.validate().map(|_| StatusCode::CREATED)
}

async fn send(content_type: Option<&str>, body: &str) -> (StatusCode, String, serde_json::Value) {
    let app = Router::new().route("/orders", post(create));
    let mut req = Request::post("/orders");
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let res = app
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, ct, json)
}

const GOOD: &str = r#"{"customer_id":"123e4567-e89b-12d3-a456-426614174000","items":[{"product_id":"p-1","quantity":2,"price":25.00}],"shipping_address":{"street":"1 Main St","city":"SF","state":"CA","zip":"94102"}}"#;

#[tokio::test]
async fn a_good_order_passes() {
    let (status, _, _) = send(Some("application/json"), GOOD).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_json_is_400_problem() {
    let (status, ct, body) = send(Some("application/json"), "{\"customer_id\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["type"], "/problems/malformed");
}

#[tokio::test]
async fn a_bad_uuid_is_422_naming_the_field() {
    let bad = GOOD.replace("123e4567-e89b-12d3-a456-426614174000", "not-a-uuid");
    let (status, ct, body) = send(Some("application/json"), &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(ct, "application/problem+json");
    assert!(
        body["detail"].as_str().unwrap().contains("customer_id"),
        "{body}"
    );
}

#[tokio::test]
async fn zero_quantity_is_422_with_the_field() {
    let bad = GOOD.replace("\"quantity\":2", "\"quantity\":0");
    let (status, _, body) = send(Some("application/json"), &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "items[0].quantity");
}

#[tokio::test]
async fn no_content_type_is_415() {
    let (status, ct, _) = send(None, GOOD).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(ct, "application/problem+json");
}
