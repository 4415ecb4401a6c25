// dynalite ships no types; dynamolock/testing uses only its factory, typed where it is called.
declare module "dynalite";
