//! Storage conformance: every backend must behave the same. Each test is written against
//! `&dyn Store` and run for every backend that can run here.

mod conformance;
mod disk;
mod postgres;
mod sqlite;
mod tables;
mod throwaway;
