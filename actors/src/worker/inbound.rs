//! What the process and the Supervisor say about it, fed to the brain: its frames (hello,
//! collection, every later message), its malformed frames, and the reference once complete.
//! The brain decides what each means ([`herd_core::slot::machine`]).

use super::*;

impl Handler<FromProcess> for Worker {
    type Result = ();

    fn handle(&mut self, msg: FromProcess, ctx: &mut Self::Context) {
        let input = Input::FromProcess {
            identity: msg.identity,
            message: msg.message,
            collect: msg.collect,
        };
        self.input(ctx, input);
    }
}

impl Handler<Garbage> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Garbage, ctx: &mut Self::Context) {
        let input = Input::Garbage {
            identity: msg.identity,
            reason: msg.reason,
        };
        self.input(ctx, input);
    }
}

impl Handler<ReferenceReady> for Worker {
    type Result = ();

    fn handle(&mut self, ReferenceReady(reference): ReferenceReady, ctx: &mut Self::Context) {
        self.input(ctx, Input::ReferenceReady(reference));
    }
}
