//! The one trait every saved part of the machine goes through.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A part of the machine whose state a snapshot holds.
///
/// `save` reads the state the guest can observe into a plain struct;
/// `restore` builds the part anew from that struct and the edges it is
/// wired to (`ConstructorArgs`: interrupt lines, guest memory, host
/// files), which are the new process's and never in the snapshot.
/// Restoring checks the state as it would a guest's input: a snapshot
/// file is the user's to hand over, so a bad value is an error, not a
/// panic.
pub trait Persist: Sized {
    type State: Serialize + DeserializeOwned;
    type ConstructorArgs;
    type Error: std::error::Error;

    fn save(&self) -> Self::State;

    fn restore(args: Self::ConstructorArgs, state: &Self::State) -> Result<Self, Self::Error>;
}

#[cfg(any(test, feature = "test-utils"))]
/// For each part's unit test: saves `part`, restores a new one from the
/// state's encoding with `args`, and checks that saving that one gives the
/// same bytes. Returns the restored part for further checks.
pub fn assert_round_trip<P: Persist>(part: &P, args: P::ConstructorArgs) -> P
where
    P::Error: std::fmt::Debug,
{
    let bytes = postcard::to_stdvec(&part.save()).expect("the state encodes");
    let state: P::State = postcard::from_bytes(&bytes).expect("the state decodes");
    let restored = P::restore(args, &state).expect("the state restores");
    let again = postcard::to_stdvec(&restored.save()).expect("the state encodes again");
    assert_eq!(bytes, again, "save, restore, save gave other bytes");
    restored
}
