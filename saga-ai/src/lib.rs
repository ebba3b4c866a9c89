//! saga-ai
