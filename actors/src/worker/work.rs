//! The Scheduler's messages, fed to the brain: assignments (the cleanse before a provider
//! switch runs in the shell) and steal requests.

use super::*;

impl Handler<Assignment> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Assignment, ctx: &mut Self::Context) {
        let input = Input::Assignment {
            incarnation: msg.incarnation,
            tests: msg.tests,
            switch: msg.switch,
        };
        self.input(ctx, input);
    }
}

impl Handler<Steal> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Steal, ctx: &mut Self::Context) {
        let input = Input::Steal {
            policy: msg.policy,
            thief_load: msg.thief_load,
        };
        self.input(ctx, input);
    }
}
