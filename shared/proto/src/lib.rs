//! The charla API as Rust: messages, clients and servers generated from `proto/` at build time.
//! This is the only copy of the API types; services convert them to domain types at their edge.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod charla {
    pub mod contact {
        pub mod v1 {
            tonic::include_proto!("charla.contact.v1");
        }
    }
    pub mod conversation {
        pub mod v1 {
            tonic::include_proto!("charla.conversation.v1");
        }
    }
    pub mod metrics {
        pub mod v1 {
            tonic::include_proto!("charla.metrics.v1");
        }
    }
}

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// The encoded descriptors of every charla proto and what they import, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/charla_descriptor.bin"));
