"""What a student runs in their own repository: `socklab status` and hints."""
