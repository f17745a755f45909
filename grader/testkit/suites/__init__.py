"""Test classes that several exercises share. An exercise's suite inherits
one and provides the fixture it needs (for example `server_spec`), so a
rule of the contract is tested by one piece of code everywhere."""
