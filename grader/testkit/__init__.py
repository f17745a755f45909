"""What the suites import: line clients, crowds, the chat protocol, fake
servers and peers, source checks, and the test classes suites share."""
