"""A worker out of file descriptors: carrying out fdlimit's decisions (the Worker's part).

accept() refused with EMFILE or ENFILE leaves the listeners readable, so a loop that
polled on would spin. OutOfFds closes the connections fdlimit chooses, or rests the
listeners until a connection of the worker's closes or fdlimit.BACKOFF passes, and logs
fdlimit's few lines. The state (`strain`, `paused`, `wait`, `due`) lives on the Worker,
which calls `out_of_fds` from accept, `rest_over` from each turn's end while `paused`,
and `strain_tick` once a second.
"""
import resource

from .. import fdlimit


class OutOfFds:
    """Mixed into Worker (which holds conns, clock, log, slot, pid, listening, listen)."""

    def out_of_fds(self, exc):
        """accept() refused for lack of descriptors: close what fdlimit chooses (room for
        the next accept), or rest the listeners."""
        now, conns = self.clock.now, self.conns
        closable = [(c.last, fd) for fd, c in conns.items() if c.reclaimable()]
        r = fdlimit.refused(self.strain, now, closable, len(conns), "[Errno %d] %s" % (exc.errno, exc.strerror))
        self.strain = r.strain
        if r.say is not None:
            self.say_strain(r.say, r.strain, now)
        for fd in r.close:
            conns[fd].close()
        if r.strain.paused_until is not None and not self.paused:
            self.paused = True
            self.wait = fdlimit.BACKOFF     # an idle loop wakes for the back-off's end
            if self.listening:
                self.listen(False)
        self.due = now       # end_turn looks at the rest every turn while it lasts

    def rest_over(self, now):
        """From end_turn while paused: poll the listeners again once fdlimit says so."""
        if fdlimit.resumes(self.strain, now, len(self.conns)):
            self.strain = fdlimit.resumed(self.strain)
            self.paused = False
            self.wait = self.TICK
            if not self.stopping:
                self.listen(True)

    def strain_tick(self, now):
        """Once a second during an episode: its summary, or its end."""
        strain = self.strain
        self.strain, say = fdlimit.tick(strain, now)
        if say is not None:
            self.say_strain(say, self.strain or strain, now)    # OVER tells the ended episode's totals

    def say_strain(self, say, strain, now):
        self.log.warning(fdlimit.line(say, strain, now, "worker=%d pid=%d" % (self.slot, self.pid),
                                      resource.getrlimit(resource.RLIMIT_NOFILE)[0], len(self.conns)))
