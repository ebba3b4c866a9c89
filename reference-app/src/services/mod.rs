//! The services of the order system, one module each.

pub mod ai;
pub mod ai_insights;
pub mod analytics;
pub mod analytics_cache;
pub mod assistant;
pub mod common;
pub mod drift;
pub mod healing_log;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod order_stats;
pub mod payment;
pub mod shipping;
pub mod web;
