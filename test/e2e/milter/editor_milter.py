"""A test milter (python3-milter) that modifies what the test asks for, by Subject and recipient,
and writes what it saw (macros, envelope, headers, body size) to a JSON lines file.

usage: editor_milter.py PORT|unix:/PATH SEEN_FILE
"""
import json
import sys

import Milter

PORT, SEEN = sys.argv[1], sys.argv[2]


class Editor(Milter.Base):
    def __init__(self):
        self.reset()

    def reset(self):
        self.headers, self.body_size, self.rcpts, self.sender = [], 0, [], None
        self.macros = {}

    def remember(self, *names):
        for n in names:
            v = self.getsymval(n)
            if v is not None:
                self.macros[n] = v

    def connect(self, hostname, family, hostaddr):
        self.client = hostaddr[0] if hostaddr else None
        self.conn_macros = {n: self.getsymval(n) for n in ("j", "_", "{daemon_name}", "{client_addr}")}
        return Milter.CONTINUE

    def hello(self, name):
        self.helo = name
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.reset()
        self.sender = sender
        self.remember("{mail_addr}", "{auth_authen}", "{auth_type}")
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        if to.startswith("<reject@"):
            self.setreply("550", "5.7.1", "first line", "second line")
            return Milter.REJECT
        if to.startswith("<tempfail@"):
            return Milter.TEMPFAIL
        self.rcpts.append(to)
        self.remember("{rcpt_addr}")
        return Milter.CONTINUE

    # No reply to headers and body chunks (SMFIP_NR_HDR, SMFIP_NR_BODY), no end of headers
    # (SMFIP_NOEOH): the MTA must neither wait for those answers nor send that step.
    @Milter.noreply
    def header(self, name, value):
        self.headers.append([name, value])
        return Milter.CONTINUE

    @Milter.nocallback
    def eoh(self):
        return Milter.CONTINUE

    @Milter.noreply
    def body(self, chunk):
        self.body_size += len(chunk)
        return Milter.CONTINUE

    def eom(self):
        self.remember("i")
        subject = next((v for n, v in self.headers if n.lower() == "subject"), "")
        with open(SEEN, "a") as f:
            f.write(json.dumps({"subject": subject, "connect": self.conn_macros, "helo": self.helo, "from": self.sender,
                                "rcpts": self.rcpts, "headers": self.headers, "body": self.body_size, "macros": self.macros,
                                "client": self.client, "protocol": self._protocol}) + "\n")
        if subject == "rewrite":
            self.chgfrom("<bounces@example.org>")
            self.delrcpt("<bob@corp.example>")
            self.addrcpt("<carol@corp.example>")
            self.chgheader("Subject", 1, "rewritten")
            self.addheader("X-Milter", "appended")
            self.addheader("X-Milter-Top", "inserted", 0)
            self.replacebody(b"the milter's new body\r\n" * 20000)
        elif subject == "reject":
            self.setreply("554", "5.7.0", "rejected by the test milter")
            return Milter.REJECT
        elif subject == "discard":
            return Milter.DISCARD
        elif subject == "quarantine":
            self.quarantine("held by the test milter")
        elif subject == "inject":
            self.chgheader("Subject", 1, "x\r\nBcc: victim@example.net")
        elif subject == "many":
            for i in range(10000):
                self.addrcpt("<r%d@corp.example>" % i)
        return Milter.ACCEPT


if __name__ == "__main__":
    Milter.factory = Editor
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.DELRCPT | Milter.CHGFROM | Milter.QUARANTINE)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    Milter.runmilter("editor", PORT if PORT.startswith("unix:") else "inet:%s@127.0.0.1" % PORT, 60)
