//! MongoDB, served by Berth's MongoDB-compatible image (SecantusDB, see `images/mongodb`): the
//! image recipe and container contract ([`image`]), the names the server accepts ([`names`])
//! and the operations a linkable engine performs as the server's admin ([`admin`]). Not in the
//! engine registry yet: the `Engine`/`Tenancy` implementation is built on these.

pub mod admin;
pub mod image;
pub mod names;
